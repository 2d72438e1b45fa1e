"""The HTML report of a large batch in headless Chromium: how long it takes to load against a page of the same size
that does nothing, how long a hover takes to fill the side panel, and how big the file is.

The batch: `--groups` prompts x one tree each; the tree forks 4 ways at the prompt and then 2 ways at each of
`--levels` more depths (4 x 2^levels leaves per group: 64 x 16 = 1,024 trajectories by default), every node with
`--tokens` tokens (varied +-50 %) carrying confidences. A real server scores it with the four tree estimators, filters
it and replays it through Watch (`treecredit.report.gather`); the page is written once, then loaded `--repeat` times.
The baseline page holds the same number of bytes in an inert JSON script and no code. Load time is the navigation
entry's `loadEventEnd` (all inline scripts have run and the grid is drawn by then).

Output: one JSON line. With `--screenshot PATH`, also a picture of a typical batch (8 groups x 16 trajectories) with
a stopped trajectory hovered: the README's docs/report.png.

Usage: python bench/report.py [--groups 64] [--levels 2] [--tokens 200] [--repeat 5] [--screenshot docs/report.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import treecredit
from treecredit import report
from treecredit_server.process import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import Chromium  # noqa: E402


def batch(groups: int, levels: int, tokens: int, seed: int = 0) -> treecredit.Forest:
    """`groups` trees: a prompt forking 4 ways, then 2 ways for `levels` depths; random rewards and confidences."""
    rng = np.random.default_rng(seed)
    parent, group = [], []
    for g in range(groups):
        root = len(parent)
        parent.append(-1)
        group.append(f"prompt-{g:02d}")
        frontier = [root]
        for fanout in (4, *([2] * levels)):
            children = []
            for node in frontier:
                for _ in range(fanout):
                    children.append(len(parent))
                    parent.append(node)
                    group.append(f"prompt-{g:02d}")
            frontier = children
    parent = np.asarray(parent)
    n = len(parent)
    is_leaf = np.bincount(parent[parent >= 0], minlength=n) == 0
    skill = rng.uniform(0.2, 0.8, groups)[np.repeat(np.arange(groups), n // groups)]
    reward = np.where(is_leaf, (rng.random(n) < skill).astype(np.float64), np.nan)
    num_tokens = rng.integers(tokens // 2, tokens * 3 // 2 + 1, n)
    drift = np.repeat(rng.normal(0, 1.5, n), num_tokens)  # each step is confident or not as a whole
    confidence = (12 + drift + rng.normal(0, 1.0, int(num_tokens.sum()))).astype(np.float32)
    return treecredit.Forest.from_arrays(parent, group=np.asarray(group), reward=reward, num_tokens=num_tokens,
                                         confidence=confidence)


def load_ms(page, url: str) -> float:
    page.navigate(url)
    return page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")


def centre(page, node: int) -> tuple[float, float]:
    """Where `node` is on the screen, once scrolled into view."""
    return page.evaluate(f"(() => {{ const e = document.querySelector('#groups [data-node=\"{node}\"]');"
                         f" e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
                         f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")


def hover_ms(page, node: int) -> float:
    """Mouse over `node` and wait for the side panel to show it; milliseconds of wall clock."""
    x, y = centre(page, node)
    started = time.perf_counter()
    page.hover(x, y)
    page.wait_for(f"document.getElementById('detail').dataset.node === '{node}'")
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()

    server = start_server()
    server.drain_log()
    try:
        with treecredit.CreditClient(server.target, timeout=300) as client, \
                tempfile.TemporaryDirectory() as folder, Chromium() as browser:
            folder = Path(folder)
            forest = batch(args.groups, args.levels, args.tokens)
            started = time.perf_counter()
            results, verdicts = report.gather(client, forest, window=args.window)
            gathered = time.perf_counter() - started
            page_path = report.write(folder / "report.html", forest, results, verdicts, title="bench batch")
            written = time.perf_counter() - started - gathered
            size = page_path.stat().st_size
            empty = folder / "empty.html"
            filler = "x" * (size - 120)
            empty.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>empty</title></head><body>'
                             f'<script type="application/json">{filler}</script></body></html>'[:size])

            page = browser.page("about:blank")
            reports, baselines = [], []
            for _ in range(args.repeat):  # interleaved, so that load on the machine falls on both alike
                baselines.append(load_ms(page, empty.as_uri()))
                reports.append(load_ms(page, page_path.as_uri()))
            leaves = forest.leaves
            hovers = [hover_ms(page, int(node)) for node in leaves[:: max(1, len(leaves) // args.repeat)]]
            print(json.dumps({
                "trajectories": len(leaves), "nodes": forest.num_nodes, "tokens": int(forest.num_tokens.sum()),
                "estimators": len(results), "file_bytes": size, "empty_page_bytes": empty.stat().st_size,
                "gather_s": round(gathered, 2), "write_s": round(written, 2),
                "report_load_ms": round(statistics.median(reports), 1),
                "empty_load_ms": round(statistics.median(baselines), 1),
                "load_ratio": round(statistics.median(reports) / statistics.median(baselines), 2),
                "hover_ms_median": round(statistics.median(hovers), 1), "hover_ms_max": round(max(hovers), 1),
            }))

            if args.screenshot:
                typical = batch(8, 2, args.tokens, seed=3)
                results, verdicts = report.gather(client, typical, window=args.window, keep_percent=90)
                shot = report.write(folder / "typical.html", typical, results, verdicts,
                                    title="A batch of 8 prompts x 16 trajectories")
                page = browser.page(shot.as_uri(), width=1400, height=900)
                stopped = np.asarray(verdicts.watch_stop)
                leaf = int(typical.leaves[np.argmax(stopped >= 0)] if (stopped >= 0).any() else typical.leaves[0])
                page.click(*centre(page, leaf))  # pinned: the mouse may rest on another node after scrolling
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(args.screenshot)
                print(f"wrote {args.screenshot} (node {leaf} clicked)", file=sys.stderr)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
