"""DeepConf trace confidence over a forest (ALGORITHMS.md section 5), shared prefixes computed once.

Inputs are flat arrays (the kernels know nothing of rewards or groups):

- ``confidence`` [U]: token confidences concatenated node by node (tokens whose loss mask is 0
  already removed by the caller),
- ``node_offsets`` [N+1] int64: node n holds ``confidence[node_offsets[n]:node_offsets[n+1]]``
  (``node_offsets[0] == 0``, non-decreasing, ``node_offsets[N] == U``),
- ``parent`` [N] int64: -1 for roots, ``parent[i] < i`` otherwise,
- ``leaves`` [P] int64: the last node of each trajectory (any node is accepted).

For the trajectory c_1..c_T of leaf p (the tokens of path(p), root first), with window W and
tail W_tail: G_i = mean(c_{i-W+1..i}) for i >= W (one group, the mean of all c, when T < W);
``lowest = min G``, ``bottom10`` = mean of the max(1, floor(0.1 #groups)) smallest G,
``tail`` = mean of the last min(T, W_tail) c, ``mean`` = mean c; T == 0 gives NaN for all four.

Outputs: ``lowest, bottom10, tail, mean`` float64 [P] (all arithmetic is float64: prefix sums
over long paths keep their precision), ``num_tokens`` int64 [P] (= T).

Method and cost (U unique tokens, N nodes, D the depth of the deepest node):

- Along-path token positions and path-prefix sums per node by pointer doubling over the parent
  array: O(N log D), no per-node Python loop.
- Every unique token's window sum is computed once: ``Pfx(i+1) - Pfx(i+1-W)`` where ``Pfx`` is
  the path prefix sum; the far end ``Pfx(i+1-W)`` may lie in an ancestor, found by binary lifting
  over an O(N log D) ancestor table: O(U log D) in all.
- ``lowest``: per-node min of G (segment min), then min propagated down the tree by pointer
  doubling: O(U + N log D). ``mean`` and ``tail``: O(P log D) prefix look-ups.
- ``bottom10`` is the one statistic that depends on a whole path's multiset of G. It gathers
  the G of every group on each trajectory (the windows themselves are not recomputed) and sorts
  them by (trajectory, G): O(S log S) time with S = sum over trajectories of their #groups,
  memory bounded by processing trajectories in chunks of at most ``_BOTTOM_CHUNK`` groups. The
  (leaf, ancestor) pairs are enumerated by a loop over depth levels, vectorised over leaves.

Both backends run the same vectorised torch code (on the tensors' device); there is no Triton
kernel for this one yet.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

_BOTTOM_CHUNK = 1 << 24


class WindowConfidence(NamedTuple):
    lowest: torch.Tensor  # float64 [P]
    bottom10: torch.Tensor  # float64 [P]
    tail: torch.Tensor  # float64 [P]
    mean: torch.Tensor  # float64 [P]
    num_tokens: torch.Tensor  # int64 [P]


def _ancestor_table(parent: torch.Tensor) -> list[torch.Tensor]:
    """up[i][n] = the 2^i-th ancestor of n, or -1; as many levels as the deepest chain needs."""
    up = [parent]
    while bool((up[-1] >= 0).any()):
        p = up[-1]
        up.append(torch.where(p >= 0, p[p.clamp(min=0)], p))
    return up


def _path_reduce(val: torch.Tensor, up: list[torch.Tensor], op) -> torch.Tensor:
    """op-reduce of `val` over each node's ancestors-or-self, by pointer doubling."""
    acc = val.clone()
    for ptr in up[:-1]:  # the last level is all -1
        has = ptr >= 0
        acc = torch.where(has, op(acc, acc[ptr.clamp(min=0)]), acc)
    return acc


def _deepest_at_or_before(node, j, start, up):
    """The deepest ancestor-or-self a of `node` with start[a] <= j (j >= 0 so a root qualifies)."""
    a = node.clone()
    need = start[a] > j
    for ptr in reversed(up[:-1]):
        cand = ptr[a]
        move = need & (cand >= 0)
        move &= start[cand.clamp(min=0)] > j
        a = torch.where(move, cand, a)
    return torch.where(need, up[0][a], a)


def tree_window_confidence(
    confidence: torch.Tensor,
    node_offsets: torch.Tensor,
    parent: torch.Tensor,
    leaves: torch.Tensor,
    *,
    window: int = 2048,
    tail: int = 2048,
) -> WindowConfidence:
    """Per-trajectory DeepConf confidences over a forest; see the module doc."""
    if window < 1 or tail < 1:
        raise ValueError(f"window and tail must be >= 1, got {window}, {tail}")
    dev = confidence.device
    c = confidence.reshape(-1).to(torch.float64)
    off = node_offsets.reshape(-1).to(device=dev, dtype=torch.int64)
    par = parent.reshape(-1).to(device=dev, dtype=torch.int64)
    lv = leaves.reshape(-1).to(device=dev, dtype=torch.int64)
    N, U, P = par.numel(), c.numel(), lv.numel()
    if off.numel() != N + 1:
        raise ValueError(f"node_offsets must have N+1={N + 1} entries, got {off.numel()}")
    if int(off[0]) != 0 or int(off[-1]) != U or bool((off[1:] < off[:-1]).any()):
        raise ValueError("node_offsets must start at 0, be non-decreasing and end at len(confidence)")
    if N and bool(((par >= torch.arange(N, device=dev)) | (par < -1)).any()):
        raise ValueError("parent must satisfy -1 <= parent[i] < i")
    if P and bool(((lv < 0) | (lv >= N)).any()):
        raise ValueError("leaves must index nodes")

    nan = torch.full((P,), float("nan"), dtype=torch.float64, device=dev)
    if P == 0:
        return WindowConfidence(nan, nan.clone(), nan.clone(), nan.clone(),
                                torch.zeros(0, dtype=torch.int64, device=dev))
    W, Wt = int(window), int(tail)
    ln = off[1:] - off[:-1]
    C = torch.zeros(U + 1, dtype=torch.float64, device=dev)
    torch.cumsum(c, 0, out=C[1:])
    nsum = C[off[1:]] - C[off[:-1]]
    up = _ancestor_table(par)
    start = _path_reduce(ln, up, torch.add) - ln  # path position of each node's first token
    base = _path_reduce(nsum, up, torch.add) - nsum  # path prefix sum before each node

    def pfx(node, j):
        a = _deepest_at_or_before(node, j, start, up)
        o = off[a]
        return base[a] + C[o + (j - start[a])] - C[o]

    # Per unique token: the window sum, once.
    nid = torch.repeat_interleave(torch.arange(N, device=dev), ln)
    pos = start[nid] + (torch.arange(U, device=dev) - off[nid])  # 0-based path position
    is_group = pos >= W - 1
    gtok = is_group.nonzero().squeeze(1)
    gnode = nid[gtok]
    hi = base[gnode] + C[gtok + 1] - C[off[gnode]]
    lo = pfx(gnode, pos[gtok] + 1 - W)
    G = torch.full((U,), float("inf"), dtype=torch.float64, device=dev)
    G[gtok] = (hi - lo) / W

    node_min = torch.full((N,), float("inf"), dtype=torch.float64, device=dev)
    node_min.scatter_reduce_(0, gnode, G[gtok], reduce="amin", include_self=True)
    path_min = _path_reduce(node_min, up, torch.minimum)

    T = start[lv] + ln[lv]
    total = base[lv] + nsum[lv]
    Tf = T.to(torch.float64)
    has = T > 0
    mean = torch.where(has, total / Tf.clamp(min=1), nan)
    nt = torch.clamp(T, max=Wt)
    tail_v = torch.where(has, (total - pfx(lv, T - nt)) / nt.clamp(min=1).to(torch.float64), nan)
    full = T >= W
    lowest = torch.where(full, path_min[lv], mean)

    bottom = mean.clone()
    ngroups = torch.where(full, T - W + 1, 0)
    if bool(full.any()):
        bottom[full] = _bottom10(G, off, ln, start, par, lv[full], ngroups[full], W)
    return WindowConfidence(lowest, bottom, tail_v, mean, T)


def _bottom10(G, off, ln, start, par, lv, ngroups, W) -> torch.Tensor:
    dev = G.device
    P = lv.numel()
    out = torch.empty(P, dtype=torch.float64, device=dev)
    csum = torch.cumsum(ngroups, 0).tolist()
    c0, done = 0, 0
    while c0 < P:
        # The largest chunk of trajectories with at most _BOTTOM_CHUNK groups (at least one).
        c1 = c0 + 1
        while c1 < P and csum[c1] - done <= _BOTTOM_CHUNK:
            c1 += 1
        out[c0:c1] = _bottom10_chunk(G, off, ln, start, par, lv[c0:c1], ngroups[c0:c1], W)
        done = csum[c1 - 1]
        c0 = c1
    return out


def _bottom10_chunk(G, off, ln, start, par, lv, ngroups, W) -> torch.Tensor:
    dev = G.device
    P = lv.numel()
    traj, nodes = [], []
    cur, idx = lv, torch.arange(P, device=dev)
    while cur.numel():  # one step per depth level, vectorised over trajectories
        traj.append(idx)
        nodes.append(cur)
        nxt = par[cur]
        keep = nxt >= 0
        cur, idx = nxt[keep], idx[keep]
    traj, nodes = torch.cat(traj), torch.cat(nodes)
    first = off[nodes] + (W - 1 - start[nodes]).clamp(min=0).minimum(ln[nodes])
    cnt = off[nodes + 1] - first
    tr = torch.repeat_interleave(traj, cnt)
    seg0 = torch.cumsum(cnt, 0) - cnt
    tok = torch.repeat_interleave(first - seg0, cnt) + torch.arange(int(cnt.sum()), device=dev)
    g = G[tok]
    o = torch.argsort(g, stable=True)
    o = o[torch.argsort(tr[o], stable=True)]
    g, tr = g[o], tr[o]
    counts = torch.bincount(tr, minlength=P)
    rank = torch.arange(g.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    m = torch.clamp(ngroups // 10, min=1)
    take = rank < m[tr]
    s = torch.zeros(P, dtype=torch.float64, device=dev).index_add_(0, tr[take], g[take])
    return s / m.to(torch.float64)


def tree_window_confidence_reference(confidence, node_offsets, parent, leaves, *, window=2048, tail=2048):
    """Float64 reference that materialises every trajectory (slow; for tests)."""
    import numpy as np

    c = np.asarray(confidence, dtype=np.float64)
    off = np.asarray(node_offsets, dtype=np.int64)
    par = np.asarray(parent, dtype=np.int64)
    rows = []
    for leaf in np.asarray(leaves, dtype=np.int64):
        path, n = [], int(leaf)
        while n >= 0:
            path.append(n)
            n = int(par[n])
        x = np.concatenate([c[off[n]:off[n + 1]] for n in reversed(path)])
        T = len(x)
        if T == 0:
            rows.append((np.nan,) * 4 + (0,))
            continue
        if T < window:
            groups = np.array([x.mean()])
        else:
            cs = np.concatenate([[0.0], np.cumsum(x)])
            groups = np.array([x[i - window:i].sum() / window for i in range(window, T + 1)])
            del cs
        m = max(1, int(np.floor(0.1 * len(groups))))
        rows.append((groups.min(), np.sort(groups)[:m].mean(), x[T - min(T, tail):].mean(), x.mean(), T))
    a = np.array(rows, dtype=np.float64).reshape(-1, 5)
    return WindowConfidence(*(torch.from_numpy(a[:, i].copy()) for i in range(4)),
                            torch.from_numpy(a[:, 4].astype(np.int64)))
