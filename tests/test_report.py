"""The HTML report opened in headless Chromium (tests/browser.py): every node, group and verdict is on the page,
and hovering a node with the mouse shows the V(n) and a(n) computed here by hand from ALGORITHMS.md.

The forest (window 2, keep 50 %), confidences per token in brackets:

    group a:  0 [5 5] ─┬─ 1 [4 4 4] ─┬─ 3 [6 6]  R=1
                       │             ├─ 4 [2 2]  R=0
                       │             └─ 5 [3]    R=1
                       └─ 2 [1 1]  R=0
    group b:  6 [5] ─┬─ 7 [5 5] R=1      9 [5] ── 10 [5 5] R=1
                     └─ 8 [5 5] R=1
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest

import treecredit
from browser import Chromium
from treecredit import cli, report

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "forest.json"
EPS = 1e-6
PARENT = [-1, 0, 0, 1, 1, 1, -1, 6, 6, -1, 9]
GROUP = ["a"] * 6 + ["b"] * 5
REWARD = [math.nan, math.nan, 0, 1, 0, 1, math.nan, 1, 1, math.nan, 1]
CONFIDENCE = [[5, 5], [4, 4, 4], [1, 1], [6, 6], [2, 2], [3], [5], [5, 5], [5, 5], [5], [5, 5]]
LABELS = ["prompt a", "plan </script><b>bold", "give up", "check", "slip", "short", "prompt b", "x", "y", "prompt b", "z"]


def small_forest() -> treecredit.Forest:
    forest = treecredit.Forest()
    for parent, group, reward, confidence in zip(PARENT, GROUP, REWARD, CONFIDENCE):
        forest.add(None if parent < 0 else parent, len(confidence), group=group if parent < 0 else None,
                   reward=None if math.isnan(reward) else reward, confidence=confidence)
    return forest


def by_hand() -> dict:
    """V(n) and a(n) of nodes 1 and 3 from the definitions (sections 1-3)."""
    v3, v4, v5, v2 = 1.0, 0.0, 1.0, 0.0
    v1 = (v3 + v4 + v5) / 3
    vg = (v2 + v3 + v4 + v5) / 4                     # = V(0): one tree in group a
    std = math.sqrt(sum((r - vg) ** 2 for r in (v2, v3, v4, v5)) / 3)
    z = {r: (r - vg) / (std + EPS) for r in (0.0, 1.0)}
    grpo = {3: z[1.0], 1: (z[1.0] + z[0.0] + z[1.0]) / 3}
    return {
        "V": {1: v1, 3: v3}, "Vg": vg, "Vparent": {1: vg, 3: v1},
        "a": {
            "grpo": grpo,
            "tree_grpo": {n: 2 * a for n, a in grpo.items()},  # one tree: both z terms are the same
            "treerl": {1: ((v1 - vg) + (v1 - vg)) / math.sqrt(3), 3: ((v3 - vg) + (v3 - v1)) / 1},
            "value_diff": {1: v1 - vg, 3: v3 - v1},
        },
    }


@pytest.fixture(scope="module")
def browser():
    with Chromium() as started:
        yield started


def centre_of(page, selector: str) -> tuple[float, float]:
    page.evaluate(f"document.querySelector('{selector}').scrollIntoView({{block: 'center'}})")
    return tuple(page.evaluate(f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
                               f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()"))


def hover(page, node: int) -> dict[str, str]:
    """Move the mouse onto `node` and read the side panel's fields."""
    page.hover(*centre_of(page, f'#groups [data-node="{node}"]'))
    page.wait_for(f"document.getElementById('detail').dataset.node === '{node}'")
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('#detail [data-field]')]"
                         ".map(e => [e.dataset.field, e.textContent]))")


def assert_verdicts(page) -> None:
    """The trace, query and Watch verdicts of the forest above, by hand."""
    # Trace: lowest 2-token window means in group a are 1 (leaf 2), 4 (3), 2 (4) and 3.5 (5); the 50th percentile of
    # [1, 2, 3.5, 4] is 2.75, so leaves 3 and 5 are kept. Group b: all 5, all kept (ties are kept).
    verdict = page.evaluate("Object.fromEntries([...document.querySelectorAll('#groups [data-verdict]')]"
                            ".map(e => [e.dataset.node, e.dataset.verdict]))")
    assert verdict == {"2": "drop", "3": "keep", "4": "drop", "5": "keep", "7": "keep", "8": "keep", "10": "keep"}
    # Query verdicts: group b's rewards are all 1 (zero variance, dropped); group a's vary.
    queries = page.evaluate("[...document.querySelectorAll('#groups [data-query-verdict]')]"
                            ".map(e => [e.dataset.queryVerdict, e.dataset.reason])")
    assert queries == [["keep", "informative"], ["drop", "zero_variance"]]
    assert page.evaluate("[...document.querySelectorAll('#groups [data-kept]')].map(e => e.textContent)") == [
        "kept 2/4", "kept 3/3"]
    # Watch holding the threshold 2.75 stops leaf 2 where its window [1 1] ends (token 3 of [5 5 1 1]) and leaf 4 at
    # token 6 of [5 5 4 4 4 2 2]; leaves 3 and 5 never fall below it.
    stops = {leaf: hover(page, leaf).get("stop") for leaf in (2, 3, 4, 5)}
    assert stops == {2: "stops it at token 3", 3: "lets it finish", 4: "stops it at token 6", 5: "lets it finish"}
    assert hover(page, 2)["verdict"] == "DROP (low confidence)"
    # The curve drawn for leaf 4 runs along its path 0-1-4: 7 tokens, lowest window mean (2 + 2) / 2.
    hover(page, 4)
    assert page.evaluate("[document.getElementById('confidence').dataset.tokens, "
                         "document.getElementById('confidence').dataset.lowest]") == ["7", "2.000"]


def test_the_sdk_report_of_a_batch_shows_every_node_group_and_verdict_and_hover_shows_v_and_a(
        client, browser, tmp_path):
    forest = small_forest()
    results, verdicts = report.gather(client, forest, window=2, keep_percent=50)
    first, *others = results.values()
    path = first.report(tmp_path / "report.html", others={r.estimator: r for r in others}, verdicts=verdicts,
                        labels=LABELS)
    page = browser.page(path.as_uri())
    assert page.evaluate("document.body.dataset.ready") == "1"
    assert page.requested_urls() == [path.as_uri()], "the page fetched something besides itself"

    shown = page.evaluate("[...document.querySelectorAll('#groups [data-node]')].map(e => +e.dataset.node)")
    assert sorted(shown) == list(range(len(PARENT)))
    groups = page.evaluate("[...document.querySelectorAll('#groups .group')].map(g => "
                           "[g.querySelector('h3').firstChild.textContent, [...g.querySelectorAll('[data-node]')]"
                           ".map(e => +e.dataset.node).sort((x, y) => x - y)])")
    assert groups == [["a", [0, 1, 2, 3, 4, 5]], ["b", [6, 7, 8, 9, 10]]]

    assert_verdicts(page)

    expected = by_hand()
    for estimator, a in expected["a"].items():
        page.evaluate(f"document.querySelector('[data-estimator=\"{estimator}\"]').click()")
        for node in (1, 3):
            fields = hover(page, node)
            assert fields["V"] == f"{expected['V'][node]:.4f}"
            assert fields["Vg"] == f"{expected['Vg']:.4f}"
            assert fields["Vparent"] == f"{expected['Vparent'][node]:.4f}"
            assert fields["a"] == f"{a[node]:+.4f}", (estimator, node)
            if estimator in ("grpo", "tree_grpo") and node == 3:
                assert fields["A"] == f"{a[node]:+.4f}"
    # A label that would close the data island's script tag is shown as it is.
    assert page.evaluate("document.querySelector('#detail h2').textContent") == "node 3 · check"
    hover(page, 1)
    assert page.evaluate("document.querySelector('#detail h2').textContent") == f"node 1 · {LABELS[1]}"

    # The sharing figures: 20 unique tokens; trajectories of 4 + 7 + 7 + 6 + 3 + 3 + 3 tokens.
    sharing = page.evaluate("[...document.querySelectorAll('#sharing b')].map(e => e.textContent)")
    assert sharing[:3] == ["20", "33", f"{33 / 20:.2f}×"]
    assert page.evaluate("[...document.querySelectorAll('#profile [data-depth]')].map(e => +e.dataset.depth)") == [1, 2]


def test_the_cli_writes_a_report_of_the_example_that_opens_in_chromium(capsys, server, browser, tmp_path):
    out = tmp_path / "example.html"
    assert cli.main(["report", str(EXAMPLE), "-o", str(out), "--target", server.target,
                     "--estimator", "treerl", "--estimator", "grpo"]) == 0
    page = browser.page(out.as_uri())
    nodes = json.loads(EXAMPLE.read_text())["nodes"]
    assert page.evaluate("document.querySelectorAll('#groups [data-node]').length") == len(nodes)
    assert page.evaluate("[...document.querySelectorAll('[data-estimator]')].map(b => b.dataset.estimator)") == [
        "treerl", "grpo"]
    assert page.evaluate("[...document.querySelectorAll('#groups .group h3')].map(h => h.firstChild.textContent)") == [
        "q1", "q2"]
    # Node 6 ("check roots", R = 1) under node 4, whose leaves are 6, 7, 8 with rewards 1, 1, 0; group q1's seven
    # leaves hold three 1s. treerl: a(6) = [(1 - 3/7) + (1 - 2/3)] / sqrt(1).
    fields = hover(page, 6)
    assert (fields["V"], fields["Vg"], fields["Vparent"]) == ("1.0000", f"{3 / 7:.4f}", f"{2 / 3:.4f}")
    assert fields["a"] == f"{(1 - 3 / 7) + (1 - 2 / 3):+.4f}"
    assert "verdict" not in fields  # no confidences: nothing to filter on



def test_the_cli_report_of_a_json_forest_with_confidences_shows_the_same_verdicts(server, browser, tmp_path):
    nodes = [{"parent": None if p < 0 else p, "confidence": c, "label": label}
             | ({"group": g} if p < 0 else {}) | ({} if math.isnan(r) else {"reward": r})
             for p, g, r, c, label in zip(PARENT, GROUP, REWARD, CONFIDENCE, LABELS)]
    (tmp_path / "forest.json").write_text(json.dumps({"nodes": nodes}))
    out = tmp_path / "report.html"
    assert cli.main(["report", str(tmp_path / "forest.json"), "-o", str(out), "--target", server.target,
                     "--window", "2", "--keep-percent", "50"]) == 0
    page = browser.page(out.as_uri())
    assert_verdicts(page)
    assert hover(page, 1)["V"] == f"{by_hand()['V'][1]:.4f}"


def test_top_k_log_probs_give_the_same_verdicts_and_curves_as_their_confidences(client):
    forest = treecredit.Forest()
    for parent, group, reward, confidence in zip(PARENT, GROUP, REWARD, CONFIDENCE):
        rows = [[-c - 1.0, -c + 1.0] for c in confidence]  # confidence = -mean of the top-k log-probs = c
        forest.add(None if parent < 0 else parent, len(confidence), group=group if parent < 0 else None,
                   reward=None if math.isnan(reward) else reward, topk_logprobs=rows)
    results, verdicts = report.gather(client, forest, ["value_diff"], window=2, keep_percent=50)
    assert verdicts.watch_stop.tolist() == [3, -1, 6, -1, -1, -1, -1]  # leaves 2, 3, 4, 5, 7, 8, 10
    island = report.data(forest, results, verdicts)["verdicts"]
    assert island["keep"] == [False, True, False, True, True, True, True]
    decoded = np.frombuffer(base64.b64decode(island["confidence"]), "<f2").tolist()
    assert decoded == [c for node in CONFIDENCE for c in node]
    assert island["confidence_count"] == [len(node) for node in CONFIDENCE]
