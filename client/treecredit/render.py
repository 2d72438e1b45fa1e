"""Pictures of credit: every tree of a forest drawn left to right by depth, nodes coloured by advantage.

Pure Python SVG (no plotting library). `svg(...)` returns the document; `html(...)` wraps it in a page.
A node's colour is its advantage on a diverging scale (red below 0, blue above, white at 0, symmetric
around 0); branch points are diamonds, other nodes circles; leaves show their reward. Hovering a
node shows its id, depth, tokens, reward and advantage. The legend says what a colour means under the
estimator's scope: for leaf-scoped estimators (grpo, tree_grpo) an internal node's colour is the mean of its
leaves' A(l), while its tokens get each trajectory's own A(l).
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from treecredit.forest import Forest

# ColorBrewer RdBu, negative to positive.
PALETTE = ("#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac")
NO_VALUE = "#bdbdbd"
COLUMN = 120  # pixels per depth
ROW = 44      # pixels per leaf
LEFT, TOP, RADIUS = 40, 136, 10
COLOUR_MEANS = {
    "leaf": "colour: a(n), the mean A(l) of n's leaves; every token of a trajectory gets its leaf's A(l)",
    "node": "colour: a(n), the advantage every token of node n gets",
    "tool_call": "colour: a(n), the mean A_succ(l) of n's leaves; tool-call tokens add A_act(l)",
}


def signed(value: float) -> str:
    """`value` to two decimals with its sign, and `0.00` (never `-0.00`) for what rounds to zero."""
    text = f"{value:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


def colour(value: float, limit: float) -> str:
    """The palette colour of `value` on a scale from -limit to +limit."""
    if not math.isfinite(value):
        return NO_VALUE
    position = (min(max(value / limit, -1.0), 1.0) + 1) / 2 * (len(PALETTE) - 1) if limit > 0 else (len(PALETTE) - 1) / 2
    low = int(math.floor(position))
    high = min(low + 1, len(PALETTE) - 1)
    mix = position - low
    a, b = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (PALETTE[low], PALETTE[high]))
    return "#" + "".join(f"{round(x + (y - x) * mix):02x}" for x, y in zip(a, b))


def _layout(forest: Forest) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float, float]]]:
    """Per node: its row (leaves 0, 1, 2, ... in depth-first order; a parent centred on its children)
    and depth; and per tree `(root, first row, last row)`."""
    topology = forest.topology
    parent = topology.parent
    children: list[list[int]] = [[] for _ in range(len(parent))]
    for child in np.flatnonzero(parent >= 0).tolist():
        children[parent[child]].append(child)
    row = np.zeros(len(parent))
    trees, next_row = [], 0.0
    for root in np.flatnonzero(parent < 0).tolist():
        first = next_row
        order, stack = [], [root]
        while stack:  # depth-first, children in id order
            node = stack.pop()
            order.append(node)
            stack.extend(reversed(children[node]))
        for node in order:  # leaves take rows in depth-first order
            if not children[node]:
                row[node], next_row = next_row, next_row + 1
        for node in reversed(order):  # then parents, centred on their children
            if children[node]:
                row[node] = (row[children[node][0]] + row[children[node][-1]]) / 2
        trees.append((root, first, next_row - 1))
        next_row += 0.8  # a gap between trees
    return row, topology.depth, trees


def svg(forest: Forest, node_advantages: np.ndarray, *, labels: list[str] | None = None, title: str = "",
        scope: str | None = None) -> str:
    """An SVG document of `forest` with nodes coloured by `node_advantages` (float `[N]`); `scope` ("leaf",
    "node" or "tool_call", the estimator's) puts what a colour means in the legend."""
    advantages = np.asarray(node_advantages, dtype=np.float64)
    row, depth, trees = _layout(forest)
    finite = advantages[np.isfinite(advantages)]
    limit = float(np.abs(finite).max(initial=0.0))
    max_depth = int(depth.max(initial=0))
    width = LEFT + 150 + COLUMN * max_depth + 260
    height = TOP + ROW * (row.max(initial=0) + 1) + 20
    x = LEFT + 150 + COLUMN * depth
    y = TOP + ROW * row
    is_branch = forest.topology.num_children >= 2
    parent, reward, tokens = forest.parent, forest.reward, forest.num_tokens
    labels = labels or [""] * len(parent)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="26" font-size="17" font-weight="bold">{escape(title)}</text>',
        *_legend(limit, scope),
    ]
    for d in range(max_depth + 1):  # the depth axis
        gx = LEFT + 150 + COLUMN * d
        out.append(f'<line x1="{gx}" y1="{TOP - 22}" x2="{gx}" y2="{height - 10:.0f}" stroke="#eeeeee"/>')
        out.append(f'<text x="{gx}" y="{TOP - 28}" text-anchor="middle" fill="#666">depth {d}</text>')
    tree_number: dict = {}  # trees numbered 1, 2, ... within their group
    for root, first, last in trees:
        group = forest.groups[forest.group[root]]
        tree_number[group] = tree_number.get(group, 0) + 1
        top = TOP + ROW * first - ROW / 2
        out.append(f'<rect x="{LEFT - 10}" y="{top:.1f}" width="{width - LEFT:.0f}" height="{ROW * (last - first + 1):.1f}" '
                   f'fill="#fafafa" stroke="#e0e0e0" rx="6"/>')
        out.append(f'<text x="{LEFT}" y="{TOP + ROW * (first + last) / 2 + 4:.1f}" fill="#333">'
                   f'group {escape(str(group))} · tree {tree_number[group]}</text>')
    for child in np.flatnonzero(parent >= 0).tolist():  # elbow edges
        p = parent[child]
        middle = (x[p] + x[child]) / 2
        out.append(f'<path d="M{x[p]:.1f},{y[p]:.1f} H{middle:.1f} V{y[child]:.1f} H{x[child]:.1f}" '
                   f'fill="none" stroke="#9e9e9e" stroke-width="1.5"/>')
    for node in range(len(parent)):
        out.append(_node(node, x[node], y[node], advantages[node], limit, bool(is_branch[node]), int(depth[node]),
                         int(tokens[node]), float(reward[node]), labels[node]))
    out.append("</svg>")
    return "\n".join(out)


def _node(node: int, cx: float, cy: float, advantage: float, limit: float, branch: bool, depth: int,
          tokens: int, reward: float, label: str) -> str:
    fill = colour(advantage, limit)
    tip = f"node {node}{' ' + label if label else ''}\ndepth {depth}, {tokens} tokens\nadvantage {advantage:+.4f}"
    if not math.isnan(reward):
        tip += f"\nreward {reward:g}"
    if branch:
        r = RADIUS * 1.35
        shape = (f'<polygon points="{cx:.1f},{cy - r:.1f} {cx + r:.1f},{cy:.1f} {cx:.1f},{cy + r:.1f} {cx - r:.1f},{cy:.1f}" '
                 f'fill="{fill}" stroke="#222" stroke-width="2"/>')
    else:
        shape = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{RADIUS}" fill="{fill}" stroke="#555" stroke-width="1.2"/>'
    parts = [f'<g><title>{escape(tip)}</title>', shape,
             f'<text x="{cx:.1f}" y="{cy - RADIUS - 5:.1f}" text-anchor="middle" font-size="10" fill="#444">'
             f'{signed(advantage)}</text>']
    if not math.isnan(reward):  # a leaf: reward and label to its right
        parts.append(f'<text x="{cx + RADIUS + 7:.1f}" y="{cy + 4:.1f}" fill="#222"><tspan font-weight="bold">'
                     f'R = {reward:g}</tspan><tspan dx="6" fill="#666" font-size="10">{escape(label)}</tspan></text>')
    elif label:
        parts.append(f'<text x="{cx:.1f}" y="{cy + RADIUS + 13:.1f}" text-anchor="middle" font-size="10" '
                     f'fill="#666">{escape(label)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _legend(limit: float, scope: str | None) -> list[str]:
    """The colour bar from -limit to +limit, what a colour means, and the key to the node shapes."""
    x0, y0, bar = LEFT, 44, 240
    stops = "".join(f'<stop offset="{i / (len(PALETTE) - 1):.3f}" stop-color="{c}"/>' for i, c in enumerate(PALETTE))
    ticks = [(x0, signed(-limit), "start"), (x0 + bar / 2, "0", "middle"), (x0 + bar, signed(limit), "end")]
    key_x = x0 + bar + 50
    r = RADIUS * 1.35
    return [
        f'<defs><linearGradient id="advantage-scale">{stops}</linearGradient></defs>',
        f'<text x="{x0}" y="{y0 - 4}" fill="#333">advantage</text>',
        f'<rect x="{x0}" y="{y0}" width="{bar}" height="12" fill="url(#advantage-scale)" stroke="#999"/>',
        *(f'<text x="{tx}" y="{y0 + 26}" text-anchor="{anchor}" fill="#333">{text}</text>' for tx, text, anchor in ticks),
        f'<text x="{x0}" y="{y0 + 46}" fill="#555" font-style="italic">{escape(COLOUR_MEANS.get(scope, "colour: a(n)"))}</text>',
        f'<polygon points="{key_x},{y0 + 6 - r:.1f} {key_x + r:.1f},{y0 + 6} {key_x},{y0 + 6 + r:.1f} {key_x - r:.1f},{y0 + 6}" '
        f'fill="white" stroke="#222" stroke-width="2"/>',
        f'<text x="{key_x + 20}" y="{y0 + 10}" fill="#333">branch point</text>',
        f'<circle cx="{key_x + 130}" cy="{y0 + 6}" r="{RADIUS}" fill="white" stroke="#555" stroke-width="1.2"/>',
        f'<text x="{key_x + 146}" y="{y0 + 10}" fill="#333">step (R = leaf reward)</text>',
    ]


def html(forest: Forest, node_advantages: np.ndarray, *, labels: list[str] | None = None, title: str = "",
         scope: str | None = None) -> str:
    """A standalone HTML page holding the SVG picture."""
    picture = svg(forest, node_advantages, labels=labels, title=title, scope=scope)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title or 'treecredit')}</title>\n"
        "<style>body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; }</style>\n"
        "</head>\n<body>\n"
        f"{picture}\n"
        "<p>Each tree runs left to right by depth; a node's colour is its advantage (hover for details).</p>\n"
        "</body>\n</html>\n"
    )


def packed_svg(packed, labels: list[str], *, title: str = "") -> str:
    """An SVG document of a `PackedForest` (no padding): its tokens in packed order with each token's
    `parent` drawn as an arc (red where it is not the token before: a branch jump), the `position_ids`,
    `subtree_end` and loss mask under them, and the tree attention mask `k <= q < subtree_end[k]` as a grid."""
    cell, left, top = 34, 130, 120
    count = packed.num_tokens
    grid_top = top + 130
    width, height = max(left + cell * count + 40, 560), grid_top + cell * count + 76
    centre = [left + cell * t + cell / 2 for t in range(count)]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="20" y="26" font-size="17" font-weight="bold">{escape(title)}</text>',
    ]
    for t in range(count):  # the packed sequence and its parent arcs
        parent = int(packed.parent[t])
        if parent >= 0:
            jump = parent != t - 1
            lift = 18 + 12 * (t - parent)
            out.append(f'<path d="M{centre[parent]:.0f},{top - 14} Q{(centre[parent] + centre[t]) / 2:.0f},'
                       f'{top - 14 - lift} {centre[t]:.0f},{top - 14}" fill="none" '
                       f'stroke="{"#b2182b" if jump else "#9e9e9e"}" stroke-width="{2 if jump else 1.2}"/>')
        fill = "#d1e5f0" if packed.loss_mask[t] else "#eeeeee"
        out.append(f'<rect x="{left + cell * t + 2}" y="{top - 14}" width="{cell - 4}" height="26" rx="4" '
                   f'fill="{fill}" stroke="#555"/>')
        out.append(f'<text x="{centre[t]:.0f}" y="{top + 4}" text-anchor="middle">{escape(labels[t])}</text>')
        for line, value in enumerate((t, parent, packed.position_ids[t], packed.subtree_end[t])):
            out.append(f'<text x="{centre[t]:.0f}" y="{top + 32 + 16 * line}" text-anchor="middle" '
                       f'fill="#444">{value}</text>')
    for line, name in enumerate(("index t", "parent", "position_ids", "subtree_end")):
        out.append(f'<text x="{left - 10}" y="{top + 32 + 16 * line}" text-anchor="end" fill="#444">{name}</text>')
    out.append(f'<text x="{left - 10}" y="{top + 4}" text-anchor="end" fill="#444">packed order</text>')
    out.append(f'<text x="{left - 10}" y="{grid_top - 8}" text-anchor="end" fill="#444">query q \u2193 key k \u2192</text>')
    for q in range(count):  # the mask: query rows, key columns
        out.append(f'<text x="{left - 10}" y="{grid_top + cell * q + cell / 2 + 4:.0f}" text-anchor="end">'
                   f'{escape(labels[q])}</text>')
        out.append(f'<text x="{centre[q]:.0f}" y="{grid_top - 8}" text-anchor="middle">{escape(labels[q])}</text>')
        for k in range(count):
            sees = k <= q < packed.subtree_end[k]
            out.append(f'<rect x="{left + cell * k}" y="{grid_top + cell * q}" width="{cell}" height="{cell}" '
                       f'fill="{"#4393c3" if sees else "white"}" stroke="#cccccc"/>')
    out.append(f'<text x="20" y="{height - 36}" fill="#444">blue: q attends to k (k is q or an ancestor of q).</text>')
    out.append(f'<text x="20" y="{height - 18}" fill="#444">red arcs: parent[t] is not t - 1 (a branch jump); '
               'grey tokens: loss mask off.</text>')
    out.append("</svg>")
    return "\n".join(out)
