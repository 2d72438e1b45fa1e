"""The `treecredit` CLI against the real server: the score table, the JSON round trip, SVG/HTML pictures, and
refusals of malformed forest files that name the field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import reference_credit
from treecredit import cli, forest_json, render
from treecredit.forest import Forest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "forest.json"
SVG = "{http://www.w3.org/2000/svg}"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_score_prints_every_node_with_the_servers_advantages(capsys, server, client):
    status, out, _ = run(capsys, "score", EXAMPLE, "--estimator", "tree_grpo", "--target", server.target)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "tree_grpo (leaf-scoped), 23 nodes"
    assert lines[1].split() == ["node", "parent", "depth", "group", "label", "tokens", "reward", "advantage",
                                "leaf", "advantage"]
    expected = client.score(forest_json.load(EXAMPLE).forest, "tree_grpo").node_advantages
    rows = lines[2:]
    assert len(rows) == len(expected)
    printed = [float(row.split()[-2]) for row in rows]  # the last column is the leaf advantage
    np.testing.assert_allclose(printed, expected, atol=5e-5)
    assert "check roots" in out and rows[6].split()[:3] == ["6", "4", "3"]


def test_score_json_renders_offline_to_an_svg_coloured_by_advantage(capsys, server, tmp_path):
    status, out, _ = run(capsys, "score", EXAMPLE, "--estimator", "value_diff", "--format", "json",
                         "--target", server.target)
    assert status == 0
    scored = tmp_path / "scored.json"
    scored.write_text(out)
    document = forest_json.load(scored)
    assert document.estimator == "value_diff" and document.node_advantages is not None

    picture = tmp_path / "credit.svg"
    status, _, err = run(capsys, "render", scored, "-o", picture)  # no --target: the file's advantages
    assert status == 0 and "wrote" in err
    root = ET.fromstring(picture.read_text())
    shapes = [g[1] for g in root.iter(f"{SVG}g")]
    assert len(shapes) == len(document.forest)
    branch = document.forest.topology.num_children >= 2
    assert [s.tag == f"{SVG}polygon" for s in shapes] == branch.tolist()
    limit = np.abs(document.node_advantages).max()
    assert [s.get("fill") for s in shapes] == [rdbu(a, limit) for a in document.node_advantages]
    assert "value_diff" in picture.read_text()


def test_render_html_scores_through_the_server(capsys, server, tmp_path):
    page = tmp_path / "credit.html"
    status, _, _ = run(capsys, "render", EXAMPLE, "-o", page, "--estimator", "treerl", "--target", server.target)
    assert status == 0
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "<svg" in text and "treerl advantages" in text
    assert "colour: a(n), the advantage every token of node n gets" in text


def test_a_leaf_scoped_picture_says_its_internal_colours_are_means_of_leaf_advantages(capsys, server, tmp_path):
    picture = tmp_path / "credit.svg"
    assert run(capsys, "render", EXAMPLE, "-o", picture, "--estimator", "grpo", "--target", server.target)[0] == 0
    assert "the mean A(l) of n&#x27;s leaves; every token of a trajectory gets its leaf&#x27;s A(l)" in picture.read_text()


def test_labels_never_print_minus_zero_and_keep_the_space_after_the_reward():
    forest = Forest.from_arrays([-1, 0, 0], group=["q"] * 3, reward=[np.nan, 1.0, 0.0])
    root = ET.fromstring(render.svg(forest, np.array([-0.004, 0.001, -0.006]), labels=["", "check roots", ""]))
    values = [g[2].text for g in root.iter(f"{SVG}g")]
    assert values == ["0.00", "0.00", "-0.01"]
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.text in ("-0.01", "0", "+0.01")]
    assert ticks[:3] == ["-0.01", "0", "+0.01"]
    reward, label = next(t for t in root.iter(f"{SVG}text") if t.find(f"{SVG}tspan") is not None)
    # librsvg drops a tspan's leading space ("R = 1check roots"): the gap is an offset, not a character.
    assert (reward.text, label.text, label.get("dx")) == ("R = 1", "check roots", "6")
    assert render.signed(-0.0049) == "0.00" and render.signed(0.005) == "+0.01"


def rdbu(value: float, limit: float) -> str:
    """ColorBrewer's 9-class RdBu, linearly interpolated from -limit (dark red) through white to +limit (dark blue)."""
    stops = ["b2182b", "d6604d", "f4a582", "fddbc7", "f7f7f7", "d1e5f0", "92c5de", "4393c3", "2166ac"]
    position = (max(-1.0, min(1.0, value / limit)) + 1) * 4
    low = min(int(position), 7)
    mix = position - low
    return "#" + "".join(f"{round(int(stops[low][i:i + 2], 16) * (1 - mix) + int(stops[low + 1][i:i + 2], 16) * mix):02x}"
                         for i in (0, 2, 4))


def test_the_readme_picture_shows_the_examples_tree_grpo_advantages(capsys, server, tmp_path):
    """docs/credit.svg (the README's picture) and a fresh render of the example: every node's hover text carries its
    tree_grpo advantage as the slow reference of ALGORITHMS.md computes it, and its fill the colour of that value."""
    forest = forest_json.load(EXAMPLE).forest
    tree = reference_credit.Tree(forest.parent, [forest.groups[g] for g in forest.group], forest.reward)
    expected, _ = reference_credit.advantages(tree, "tree_grpo")
    limit = max(abs(a) for a in expected)
    picture = tmp_path / "credit.svg"
    assert run(capsys, "render", EXAMPLE, "-o", picture, "--target", server.target)[0] == 0
    for document in (picture, ROOT / "docs" / "credit.svg"):
        shown = {}
        for g in ET.fromstring(document.read_text()).iter(f"{SVG}g"):
            title = g.find(f"{SVG}title").text
            node = int(re.match(r"node (\d+)", title).group(1))
            shown[node] = (float(re.search(r"advantage ([-+]\d+\.\d+)", title).group(1)), g[1].get("fill"))
        assert sorted(shown) == list(range(len(forest))), document
        np.testing.assert_allclose([shown[n][0] for n in range(len(forest))], expected, atol=5e-5,
                                   err_msg=f"{document} is stale: regenerate it with the command in README.md")
        assert [shown[n][1] for n in range(len(forest))] == [rdbu(a, limit) for a in expected], document


def test_the_console_script_is_installed(server):
    script = Path(sys.executable).parent / "treecredit"
    done = subprocess.run([script, "score", EXAMPLE, "--estimator", "grpo", "--target", server.target],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("grpo (leaf-scoped)")


def test_diverging_colours_are_white_at_zero_and_saturate_at_the_limit():
    assert render.colour(0.0, 2.0) == render.PALETTE[4]
    assert render.colour(-2.0, 2.0) == render.colour(-5.0, 2.0) == render.PALETTE[0]
    assert render.colour(2.0, 2.0) == render.PALETTE[-1]
    assert render.colour(0.0, 0.0) == render.PALETTE[4]  # all advantages zero


LEAF = {"parent": 0, "reward": 1.0}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([1, 2], r"\(top level\): expected an object, got a list"),
        ({"nodes": [{"parent": None, "group": "q"}], "parent": [None]}, "nodes: give either"),
        ({"nodse": []}, "nodse: unknown field"),
        ({}, "nodes: is required"),
        ({"nodes": [{"parent": None, "group": "q"}, {"parent": 0, "rewrd": 1}]}, r"nodes\[1\]\.rewrd: unknown field"),
        ({"nodes": [{"parent": None, "group": "q"}, 3]}, r"nodes\[1\]: expected an object"),
        ({"nodes": [{"parent": None, "group": "q"}, {"parent": 1, "reward": 1}]},
         r"nodes\[1\]\.parent: 1 must be null \(a root\) or the index of an earlier node"),
        ({"nodes": [{"parent": None, "group": "q"}, {"parent": True, "reward": 1}]}, r"nodes\[1\]\.parent: True"),
        ({"nodes": [{"parent": None}, LEAF]}, r"nodes\[0\]\.group: a root needs a group"),
        ({"nodes": [{"parent": None, "group": "q"}, {**LEAF, "group": "r"}]},
         r"nodes\[1\]\.group: only roots name a group; node 1 is in 'q'"),
        ({"nodes": [{"parent": None, "group": "q"}, {**LEAF, "num_tokens": -1}]},
         r"nodes\[1\]\.num_tokens: expected a non-negative integer, got -1"),
        ({"nodes": [{"parent": None, "group": "q"}, {"parent": 0}]}, r"nodes\[1\]\.reward: node 1 is a leaf and needs"),
        ({"nodes": [{"parent": None, "group": "q", "reward": 0.5}, LEAF]},
         r"nodes\[0\]\.reward: node 0 has children; only leaves carry a reward"),
        ({"nodes": [{"parent": None, "group": "q"}, {"parent": 0, "reward": "1"}]},
         r"nodes\[1\]\.reward: expected a finite number or null, got '1'"),
        ({"nodes": [{"parent": None, "group": "q", "advantage": 0.1}, LEAF]},
         r"nodes\[1\]\.advantage: every node needs an advantage, or none"),
        ({"nodes": [{"parent": None, "group": "q", "label": 5}, LEAF]}, r"nodes\[0\]\.label: expected a string"),
        ({"parent": [None, 0], "group": ["q"], "reward": [None, 1]}, "group: has 1 entries for 2 nodes"),
        ({"parent": [None, 0], "group": ["q", None], "reward": [None, float("inf")]},
         r"reward\[1\]: expected a finite number or null, got inf"),
        ({"parent": [None, 0], "group": ["q", None], "reward": None}, "reward: expected a list, got null"),
        ({"parent": [None, 0], "group": ["q", None], "reward": [None, 1], "estimator": 3},
         "estimator: expected a string"),
        ({"nodes": [{"parent": None, "group": "q", "num_tokens": 2, "confidence": [1]}, LEAF]},
         r"nodes\[0\]\.confidence: has 1 values for 2 tokens"),
        ({"nodes": [{"parent": None, "group": "q", "confidence": [1, None]}, LEAF]},
         r"nodes\[0\]\.confidence\[1\]: expected a finite number, got None"),
        ({"nodes": [{"parent": None, "group": "q", "num_tokens": 2}, {**LEAF, "confidence": [1]}]},
         r"nodes\[0\]\.confidence: expected a list of numbers \(one per token\), got null"),
        ({"parent": [None, 0], "group": ["q", None], "reward": [None, 1], "confidence": [[2], [True]]},
         r"confidence\[1\]\[0\]: expected a finite number, got True"),
    ],
)
def test_malformed_forest_files_are_refused_naming_the_field(capsys, tmp_path, document, message):
    path = tmp_path / "forest.json"
    path.write_text(json.dumps(document))
    status, out, err = run(capsys, "score", path, "--target", "127.0.0.1:1")  # refused before any call
    assert status == 2 and not out
    assert err.startswith("treecredit: error: ")
    assert re.search(message, err), err


def test_columns_and_node_lists_read_the_same_forest():
    columns = {"parent": [None, 0, 0, None, 3], "group": ["q", None, None, 7, None],
               "num_tokens": [2, 3, 4, 0, 1], "reward": [None, 1.0, 0.0, None, 0.5]}
    nodes = [{k: columns[k][i] for k in columns if columns[k][i] is not None} for i in range(5)]
    a, b = forest_json.parse(columns).forest, forest_json.parse({"nodes": nodes}).forest
    for name in ("parent", "group", "num_tokens"):
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    np.testing.assert_array_equal(a.reward, b.reward)
    assert a.groups == b.groups == ["q", 7]


def test_token_confidences_are_read_per_node_and_written_back_by_score_json(capsys, server, tmp_path):
    path = tmp_path / "forest.json"
    path.write_text(json.dumps({"nodes": [{"parent": None, "group": "q", "confidence": [0.5, 1.5]},
                                          {"parent": 0, "reward": 1.0}, {"parent": 0, "reward": 0.0, "confidence": [2]}]}))
    forest = forest_json.load(path).forest
    assert forest.num_tokens.tolist() == [2, 0, 1]  # num_tokens defaults to the confidences given
    assert forest.confidence.tolist() == [0.5, 1.5, 2.0]
    status, out, _ = run(capsys, "score", path, "--format", "json", "--target", server.target)
    assert status == 0 and json.loads(out)["confidence"] == [[0.5, 1.5], None, [2.0]]


def test_not_json_and_bad_output_suffix(capsys, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{nodes: ")
    status, _, err = run(capsys, "score", broken)
    assert status == 2 and "broken.json: is not JSON" in err
    status, _, err = run(capsys, "render", EXAMPLE, "-o", tmp_path / "credit.png")
    assert status == 2 and "must end in .svg or .html" in err


@pytest.mark.parametrize("estimator", ["toolpo", "srl"])
def test_estimators_that_need_more_than_a_forest_are_not_offered(capsys, estimator):
    # A forest file carries no tool-call masks or action texts: the SDK scores these (examples/toolpo.py, srl.py).
    with pytest.raises(SystemExit) as exited:
        cli.main(["score", str(EXAMPLE), "--estimator", estimator, "--target", "127.0.0.1:1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --estimator: invalid choice: '{estimator}'" in err
    assert "{grpo,tree_grpo,treerl,value_diff}" in err  # the usage line lists what is offered
