"""ToolPO: credit the tokens of tool calls with how well the calls went, on top of the outcome.

    python examples/toolpo.py --target 127.0.0.1:50051
"""

import argparse

import numpy as np

import treecredit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", default="127.0.0.1:50051")
args = parser.parse_args()

# One task, three agent rollouts sharing a 4-token prompt. Each rollout: a tool call (3 tokens),
# the tool's output (2 tokens, not trained on), then the answer (2 tokens).
forest = treecredit.Forest()
prompt = forest.add(None, [1, 2, 3, 4], group="task-1", loss_mask=[0, 0, 0, 0])
success = [1.0, 0.0, 1.0]         # did the task succeed
correct_calls = [1.0, 0.0, 0.0]  # how many tool calls were right
masks = []
for reward in success:
    forest.add(prompt, [10, 11, 12, 20, 21, 30, 31], reward=reward, loss_mask=[1, 1, 1, 0, 0, 1, 1])
    masks.append([1, 1, 1, 0, 0, 0, 0])
tool_call_mask = np.concatenate([[0, 0, 0, 0], *masks])
action_reward = np.concatenate([[np.nan], correct_calls])

with treecredit.CreditClient(args.target, timeout=30) as client:
    result = client.score(forest, "toolpo", tool_calls=treecredit.ToolCalls(action_reward, tool_call_mask))
for leaf in forest.leaves:
    print(f"rollout {leaf}: A_succ {result.leaf_advantages[leaf]:+.3f}  A_act {result.action_advantages[leaf]:+.3f}  "
          f"tokens {np.round(result.token_advantages(leaf).astype(float), 3).tolist()}")

# By hand: each reward minus its mean over the task's rollouts (success mean 2/3, correct calls mean 1/3); a token
# gets A_succ, plus A_act on the tool call, and nothing where loss_mask is 0 (prompt, tool output).
a_succ, a_act = np.array([1, -2, 1]) / 3, np.array([2, -1, -1]) / 3
np.testing.assert_allclose(result.leaf_advantages[forest.leaves], a_succ, atol=1e-12)
np.testing.assert_allclose(result.action_advantages[forest.leaves], a_act, atol=1e-12)
for leaf, s, a in zip(forest.leaves, a_succ, a_act):
    np.testing.assert_allclose(result.token_advantages(leaf), [0, 0, 0, 0, s + a, s + a, s + a, 0, 0, s, s], atol=1e-6)
