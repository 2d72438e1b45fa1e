"""R³ reverse curriculum: start rollouts near the end of a demonstration and move the start back as
the policy masters each stage. The history travels with every call; the service keeps none.

    python examples/curriculum.py --target 127.0.0.1:50051
"""

import argparse

import numpy as np

import treecredit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--target", default="127.0.0.1:50051")
args = parser.parse_args()

rng = np.random.default_rng(0)
num_steps = 5
skill = np.array([0.3, 0.5, 0.75, 0.95, 0.99])  # the simulated policy's success rate from each start depth
history = treecredit.CurriculumHistory(num_steps)

with treecredit.CreditClient(args.target, timeout=30) as client:
    for round_ in range(8):
        plan = client.curriculum([history], mode="mixed", window=16)
        depths = plan.sample_start_depths(16, rng)
        for depth in depths:
            history.record(depth, float(rng.random() < skill[depth]))
        print(f"round {round_}: stage {plan.stage[0]} of {num_steps} ({plan.rollouts_before_advance[0]} rollouts "
              f"before it can advance), sampling depths {sorted(set(depths.tolist()))}, "
              f"failing step {plan.failing_step[0] or '-'}")
    plan = client.curriculum([history], mode="mixed", window=16)
print("success rate per start depth:", np.round(plan.success_rate[0], 2).tolist(),
      f"failing step: {plan.failing_step[0] or '-'}")

# From the history itself: the success rate from depth k is the mean outcome of the last 16 rollouts started there
# (NaN where none); the mix to sample is a probability distribution over start depths.
depth, outcome = np.array(history.start_depth), np.array(history.reward)
for k in range(num_steps):
    last = outcome[depth == k][-16:]
    assert plan.rollouts[0][k] == (depth == k).sum()
    assert (np.isnan(plan.success_rate[0][k]) and not len(last)) or plan.success_rate[0][k] == last.mean()
assert abs(plan.sample_probability[0].sum() - 1) < 1e-12 and 1 <= plan.stage[0] <= num_steps
