"""`treecredit`: score a forest file and look at its credit.

    treecredit score forest.json --estimator tree_grpo [--target HOST:PORT] [--format table|json]
    treecredit render forest.json -o credit.svg        (or credit.html)
    treecredit report forest.json -o report.html [--estimator NAME ...]

`score` prints every node's advantage as a table (or, with `--format json`, the forest with its
advantages as JSON). `render` draws the trees coloured by advantage. `report` writes a self-contained
HTML page of the whole batch: every estimator's credit, the filter's verdicts and where Watch stops each
trajectory (treecredit.report). They score through a server (`--target`, default $TREECREDIT_TARGET or
127.0.0.1:50051); `render` of a file that already carries advantages (the output of `score --format
json`) needs no server unless `--target` is given.
The file format: docs/FOREST_JSON.md. `--estimator` is one of grpo, tree_grpo, treerl, value_diff: toolpo
and srl need inputs beyond the forest and are scored from the SDK.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import grpc

from treecredit import forest_json, render, report
from treecredit.client import ESTIMATORS as SCORE_ESTIMATORS
from treecredit.client import CreditClient
from treecredit.errors import RequestError

DEFAULT_TARGET = "127.0.0.1:50051"
# toolpo and srl also need per-leaf inputs (tool-call masks, action texts) that a forest file does not carry:
# they are scored from the SDK (examples/toolpo.py, examples/srl.py), not offered here.
ESTIMATORS = [name for name in SCORE_ESTIMATORS if name not in ("toolpo", "srl")]

SCOPES = {"grpo": "leaf", "tree_grpo": "leaf", "srl": "leaf", "treerl": "node", "value_diff": "node",
          "toolpo": "tool_call"}  # what a token's advantage is, by estimator (ALGORITHMS.md section 3)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        document = forest_json.load(args.forest)
    except (RequestError, OSError) as error:  # the file: exit 2
        print(f"treecredit: error: {error}", file=sys.stderr)
        return 2
    try:
        return args.run(args, document)
    except grpc.RpcError as error:  # the call, refused by the server or lost on the way: exit 1
        print(f"treecredit: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"treecredit: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="treecredit", description="Step-level credit of rollout trees.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str, several: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("forest", help="a forest JSON file (docs/FOREST_JSON.md)")
        if several:
            sub.add_argument("--estimator", choices=ESTIMATORS, action="append",
                             help=f"repeat for several (default: all of {', '.join(report.ESTIMATORS)})")
        else:
            sub.add_argument("--estimator", choices=ESTIMATORS, default="tree_grpo")
        sub.add_argument("--target", help=f"server address (default $TREECREDIT_TARGET or {DEFAULT_TARGET})")
        sub.add_argument("--no-normalize-std", dest="normalize_std", action="store_false",
                         help="centre without dividing by the group's std (Dr. GRPO)")
        sub.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
        sub.set_defaults(run=run)
        return sub

    score = command("score", _score, "print each node's advantage")
    score.add_argument("--format", choices=("table", "json"), default="table",
                       help="json: the forest with node_advantages and leaf_advantages, for `render`")
    draw = command("render", _render, "draw the trees coloured by advantage (.svg or .html)")
    draw.add_argument("-o", "--output", required=True, type=Path, help="credit.svg or credit.html")
    page = command("report", _report, "write a self-contained HTML report of the batch's credit", several=True)
    page.add_argument("-o", "--output", required=True, type=Path, help="report.html")
    page.add_argument("--window", type=int, default=2048, help="confidence window, tokens (default 2048)")
    page.add_argument("--keep-percent", type=float, default=90.0,
                      help="trajectories the filter keeps per group, percent (default 90)")
    return parser


def _client(args) -> CreditClient:
    return CreditClient(args.target or os.environ.get("TREECREDIT_TARGET") or DEFAULT_TARGET, timeout=args.timeout)


def _scored(args, document: forest_json.ForestDocument):
    with _client(args) as client:
        return client.score(document.forest, args.estimator, normalize_std=args.normalize_std)


def _score(args, document: forest_json.ForestDocument) -> int:
    result = _scored(args, document)
    if args.format == "json":
        columns = forest_json.scored(document, result, args.estimator)
        print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in columns.items())
              + "\n}")
    else:
        print(table(document, result.node_advantages, result.leaf_advantages, args.estimator, result.scope))
    return 0


def _render(args, document: forest_json.ForestDocument) -> int:
    suffix = args.output.suffix.lower()
    if suffix not in (".svg", ".html", ".htm"):
        print(f"treecredit: error: --output: {args.output} must end in .svg or .html", file=sys.stderr)
        return 2
    if document.node_advantages is not None and args.target is None:
        advantages, estimator = document.node_advantages, document.estimator or "precomputed"
        scope = SCOPES.get(estimator)
    else:
        result = _scored(args, document)
        advantages, estimator, scope = result.node_advantages, args.estimator, result.scope
    title = f"{Path(args.forest).name}: {estimator} advantages"
    draw = render.svg if suffix == ".svg" else render.html
    args.output.write_text(draw(document.forest, advantages, labels=document.labels, title=title, scope=scope))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _report(args, document: forest_json.ForestDocument) -> int:
    with _client(args) as client:
        results, verdicts = report.gather(client, document.forest, args.estimator or report.ESTIMATORS,
                                          window=args.window, keep_percent=args.keep_percent,
                                          normalize_std=args.normalize_std)
    report.write(args.output, document.forest, results, verdicts, labels=document.labels,
                 title=f"{Path(args.forest).name}: credit of {len(document.forest.leaves)} trajectories")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def table(document: forest_json.ForestDocument, node_advantages, leaf_advantages, estimator: str, scope: str) -> str:
    """Every node, one line each: id, parent, depth, group, label, tokens, reward, advantage(s)."""
    forest = document.forest
    depth = forest.topology.depth
    header = ["node", "parent", "depth", "group", "label", "tokens", "reward", "advantage"]
    if scope == "leaf":
        header.append("leaf advantage")
    rows = []
    for n in range(len(forest)):
        row = [str(n), "-" if forest.parent[n] < 0 else str(forest.parent[n]), str(depth[n]),
               str(forest.groups[forest.group[n]]), document.labels[n] or "-", str(forest.num_tokens[n]),
               _number(forest.reward[n], "g"), _number(node_advantages[n], "+.4f")]
        if scope == "leaf":
            row.append(_number(leaf_advantages[n], "+.4f"))
        rows.append(row)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    text_columns = {3, 4}
    lines = [f"{estimator} ({scope}-scoped), {len(forest)} nodes"]
    for cells in (header, *rows):
        lines.append("  ".join(c.ljust(w) if i in text_columns else c.rjust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    return "\n".join(lines)


def _number(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


if __name__ == "__main__":
    sys.exit(main())
