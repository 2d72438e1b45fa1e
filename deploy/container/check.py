"""Score a small forest through the SDK against a running server: `python check.py HOST:PORT`.

`make test-container` runs it on the host against the container. Exits non-zero, saying why, when the
call fails or the advantages are not the ones a right answer must have.
"""

from __future__ import annotations

import sys

import numpy as np

import treecredit


def forest() -> treecredit.Forest:
    """One prompt, two answers that share a first step: the right answer's last step must earn more credit."""
    forest = treecredit.Forest()
    prompt = forest.add(None, [1, 2, 3], group="prompt")
    step = forest.add(prompt, [4, 5])
    forest.add(step, [6, 7, 8], reward=1.0)  # node 2: right
    forest.add(step, [9], reward=0.0)  # node 3: wrong
    forest.add(prompt, [10, 11], reward=0.0)  # node 4: wrong from the start
    return forest


def main(target: str) -> None:
    with treecredit.CreditClient(target, timeout=30) as client:
        result = client.score(forest(), "tree_grpo")
    advantages = result.node_advantages
    print(f"{target}: Score(tree_grpo) node advantages {np.round(advantages, 3).tolist()}")
    if advantages.shape != (5,) or not np.isfinite(advantages).all():
        sys.exit(f"{target}: expected 5 finite node advantages, got {advantages!r}")
    if not advantages[2] > advantages[3]:
        sys.exit(f"{target}: the right answer (node 2) should get more credit than the wrong one (node 3)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    main(sys.argv[1])
