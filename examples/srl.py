"""SRL: dense step rewards from an expert trajectory, by how closely each action matches the expert's step.

    python examples/srl.py --target 127.0.0.1:50051
"""

import argparse
import difflib
import statistics

import treecredit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", default="127.0.0.1:50051")
args = parser.parse_args()

expert = ["x + 3 = 7, so subtract 3 from both sides", "x = 4", "answer: 4"]
# The model's actions for each step-prompt (task + expert steps so far); None: the output did not parse.
actions = [
    ["x + 3 = 7, so subtract 3 from both sides", "divide both sides by 3", None, "x + 3 = 7, subtract 3"],
    ["x = 4", "x = 10", "x = 4"],
    ["answer: 4", "answer: 4"],
]
forest, steps = treecredit.srl_batch([expert], [actions])

with treecredit.CreditClient(args.target, timeout=30) as client:
    result = client.score(forest, "srl", step_similarity=steps)
similarity = result.step_similarity
action_of = dict(zip(forest.leaves.tolist(), steps.actions))
for prompt, kept in zip(similarity.step_prompt, similarity.kept):
    leaves = forest.leaves[forest.parent[forest.leaves] == prompt]
    print(f"step {forest.topology.depth[prompt] + 1} ({'kept' if kept else 'dropped: rewards do not vary'})")
    for leaf in leaves:
        print(f"  reward {similarity.step_reward[leaf]:+.3f}  advantage {result.leaf_advantages[leaf]:+.3f}  "
              f"{action_of[leaf]!r}")

# From the definition (ALGORITHMS.md section 9): the reward is difflib's similarity ratio to the expert step (-1 when
# the action did not parse); advantages are z-scores within a step-prompt (sample std + 1e-6); step 3's rewards are
# all 1, so it is dropped and its advantages are 0.
assert similarity.kept.tolist() == [True, True, False]
for prompt, step in zip(similarity.step_prompt, actions):
    leaves = forest.leaves[forest.parent[forest.leaves] == prompt]
    expected = [-1.0 if a is None else difflib.SequenceMatcher(None, a, expert[forest.topology.depth[prompt]]).ratio()
                for a in step]
    assert similarity.step_reward[leaves].tolist() == expected
    mean, std = statistics.mean(expected), statistics.stdev(expected)
    z = [(r - mean) / (std + 1e-6) if std > 1e-4 else 0.0 for r in expected]
    assert max(abs(a - b) for a, b in zip(result.leaf_advantages[leaves], z)) < 1e-9
