"""DRO's reflection reward: score open-ended answers by how much each rollout's reasoning raises the
likelihood of the reference answer, weighted towards the tokens the reasoning actually moves.

    python examples/reflection.py --target 127.0.0.1:50051
"""

import argparse

import numpy as np

import treecredit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", default="127.0.0.1:50051")
args = parser.parse_args()

rng = np.random.default_rng(0)
# ell[q][i, j] = log pi(reference token j | query q, rollout i's reasoning, earlier reference tokens),
# from one forward pass of the policy per rollout. Query 1's reasoning moves nothing: a flat query.
ell = [
    np.log(rng.uniform(0.05, 0.9, size=(4, 6))),
    np.full((4, 5), np.log(0.5)) + rng.normal(0, 1e-4, size=(4, 5)),
]
reflection = treecredit.Reflection(ell, min_spread=0.01)

# The rollouts as a forest: one group per query, one chain per rollout; R3 becomes their reward.
forest = treecredit.Forest()
for q, matrix in enumerate(ell):
    root = forest.add(None, 0, group=f"query-{q}")
    for _ in range(len(matrix)):
        forest.add(root, 8, reward=0.0)

with treecredit.CreditClient(args.target, timeout=60) as client:
    alone = client.reflect(reflection)
    result = client.score(forest, "grpo", reflection=reflection)
print("R3 per rollout:", np.round(alone.reward, 3).tolist())
print("query spread:", np.round(alone.spread, 4).tolist(), "kept:", alone.kept.tolist())
print("GRPO advantages on R3:", np.round(result.leaf_advantages[forest.leaves], 3).tolist())
print("(query 1's advantages are normalised noise: drop the queries the filter does not keep)")

# From the definition (ALGORITHMS.md section 7): sigma_j = population std of column j, w = sigma / sum sigma,
# R3(i) = sum_j w_j ell[i, j]; spread = max sigma; min_spread 0.01 keeps query 0 and drops the flat query 1.
sigma = [m.std(axis=0) for m in ell]
np.testing.assert_allclose(alone.reward, np.concatenate([m @ (s / s.sum()) for m, s in zip(ell, sigma)]), rtol=1e-12)
np.testing.assert_allclose(alone.spread, [s.max() for s in sigma], rtol=1e-12)
assert alone.kept.tolist() == [True, False]
r3 = alone.reward.reshape(2, 4)
np.testing.assert_allclose(result.leaf_advantages[forest.leaves].reshape(2, 4),
                           (r3 - r3.mean(1, keepdims=True)) / (r3.std(1, ddof=1, keepdims=True) + 1e-6), rtol=1e-9)
