"""Draw docs/packed.svg: ALGORITHMS.md section 12's example tree, packed by a live server.

    python docs/packed_figure.py    # starts a server on a free port, writes docs/packed.svg
"""

from __future__ import annotations

from pathlib import Path

import treecredit
from treecredit.render import packed_svg

FIGURE = Path(__file__).with_name("packed.svg")
LABELS = ["p0", "p1", "a0", "c0", "d0", "b0", "b1"]


def example_forest() -> treecredit.Forest:
    """Prompt r [p0 p1] -> a [a0] -> {c [c0], d [d0]}, and r -> b [b0 b1]."""
    forest = treecredit.Forest()
    r = forest.add(None, [100, 101], group="q", loss_mask=[False, False])
    a = forest.add(r, [102])
    forest.add(a, [103], reward=1.0)
    forest.add(a, [104], reward=0.0)
    forest.add(r, [105, 106], reward=1.0)
    return forest


def figure(client: treecredit.CreditClient) -> str:
    return packed_svg(client.pack(example_forest(), "grpo"), LABELS,
                      title="r [p0 p1] \u2192 a [a0] \u2192 {c [c0], d [d0]}; r \u2192 b [b0 b1], packed")


def main() -> None:
    from treecredit_server.process import start_server

    server = start_server()
    server.drain_log()
    try:
        with treecredit.CreditClient(server.target, timeout=30) as client:
            FIGURE.write_text(figure(client) + "\n")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
