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

``path_window_means`` gives the same windows per token instead of per trajectory: the mean of the last
min(W, p + 1) values of the path ending at each value (G where the window is full), float64 [U].

Method and cost (U unique tokens, N nodes, D the depth of the deepest node):

- Along-path token positions and path-prefix sums per node by pointer doubling over the parent
  array: O(N log D), no per-node Python loop.
- Every unique token's group confidence G is computed once, by ``window_groups`` (below): a
  token whose window lies inside its own node needs only the flat prefix sum,
  ``(C(t+1) - C(t+1-W)) / W``; only the tokens whose window starts in an ancestor (the first
  W-1 of a node, at most) need the path prefix value at the window start, found in torch by
  binary lifting over an O(N log D) ancestor table: O(F log D) with F <= min(U, N (W-1)).
- ``lowest``: per-node min of G (segment min, fused into ``window_groups``), then min propagated
  down the tree by pointer doubling: O(U + N log D). ``mean`` and ``tail``: O(P log D) prefix
  look-ups.
- ``bottom10`` is the one statistic that depends on a whole path's multiset of G. It gathers
  the G of every group on each trajectory (the windows themselves are not recomputed) and sorts
  them by (trajectory, G): O(S log S) time with S = sum over trajectories of their #groups,
  memory bounded by processing trajectories in chunks of at most ``_BOTTOM_CHUNK`` groups. The
  (leaf, ancestor) pairs are enumerated by a loop over depth levels, vectorised over leaves.

Backends: the tree bookkeeping (path positions and prefix sums, window starts in ancestors,
path minima, bottom10) is vectorised torch on the tensors' device for both. The per-token pass,
``window_groups`` (group confidence of every token and per-segment minima, float64), dispatches
on ``backend.select``: "triton" runs ``_window_groups_kernel``, one program per tile of BLOCK
flat tokens (each token finds its segment by binary search over the segment offsets, the
segment minima are a segmented scan inside the tile plus one float64 atomic min per segment
run), "torch" the same arithmetic vectorised. Both give the same float64 values.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from treecredit_kernels import backend

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


class _Paths(NamedTuple):
    """A forest's flat values laid out along its root-to-node paths (N nodes, U values)."""

    off: torch.Tensor    # int64 [N+1], node n holds values [off[n], off[n+1])
    ln: torch.Tensor     # int64 [N], values per node
    C: torch.Tensor      # float64 [U+1], flat prefix sums
    nsum: torch.Tensor   # float64 [N], each node's sum
    up: list[torch.Tensor]
    start: torch.Tensor  # int64 [N], path position of each node's first value
    base: torch.Tensor   # float64 [N], path prefix sum before each node

    def prefix(self, node: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Sum of the first j values of the path to `node` (0 <= j <= its path length)."""
        a = _deepest_at_or_before(node, j, self.start, self.up)
        o = self.off[a]
        return self.base[a] + self.C[o + (j - self.start[a])] - self.C[o]


def _paths(confidence: torch.Tensor, node_offsets: torch.Tensor, parent: torch.Tensor) -> _Paths:
    """Check the flat layout (ValueError) and compute the path bookkeeping by pointer doubling."""
    dev = confidence.device
    c = confidence.reshape(-1).to(torch.float64)
    off = node_offsets.reshape(-1).to(device=dev, dtype=torch.int64)
    par = parent.reshape(-1).to(device=dev, dtype=torch.int64)
    N, U = par.numel(), c.numel()
    if off.numel() != N + 1:
        raise ValueError(f"node_offsets must have N+1={N + 1} entries, got {off.numel()}")
    if int(off[0]) != 0 or int(off[-1]) != U or bool((off[1:] < off[:-1]).any()):
        raise ValueError("node_offsets must start at 0, be non-decreasing and end at len(confidence)")
    if N and bool(((par >= torch.arange(N, device=dev)) | (par < -1)).any()):
        raise ValueError("parent must satisfy -1 <= parent[i] < i")
    ln = off[1:] - off[:-1]
    C = torch.zeros(U + 1, dtype=torch.float64, device=dev)
    torch.cumsum(c, 0, out=C[1:])
    nsum = C[off[1:]] - C[off[:-1]]
    up = _ancestor_table(par)
    start = _path_reduce(ln, up, torch.add) - ln
    base = _path_reduce(nsum, up, torch.add) - nsum
    return _Paths(off, ln, C, nsum, up, start, base)


def _path_groups(paths: _Paths, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``window_groups`` over the paths: G [U] (+inf where the window is not full) and its per-node min [N]."""
    dev = paths.C.device
    start, ln = paths.start, paths.ln
    N = ln.numel()
    # Values whose (full) window starts before their node: local index k in [k0, k1) of node n.
    # Their path prefix value at the window start lies in an ancestor: binary lifting, in torch.
    k0 = (W - 1 - start).clamp(min=0)
    k1 = ln.clamp(max=W - 1)
    cnt = (k1 - k0).clamp(min=0)
    far_off = torch.cumsum(cnt, 0) - cnt
    F = int(cnt.sum())
    fnode = torch.repeat_interleave(torch.arange(N, device=dev), cnt)
    fk = torch.arange(F, device=dev) - far_off[fnode] + k0[fnode]
    far = paths.prefix(fnode, start[fnode] + fk + 1 - W)
    return window_groups(paths.C, paths.off, paths.base, start, far, far_off, W)


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
    paths = _paths(confidence, node_offsets, parent)
    dev = paths.C.device
    par = paths.up[0]
    N = par.numel()
    lv = leaves.reshape(-1).to(device=dev, dtype=torch.int64)
    P = lv.numel()
    if P and bool(((lv < 0) | (lv >= N)).any()):
        raise ValueError("leaves must index nodes")

    nan = torch.full((P,), float("nan"), dtype=torch.float64, device=dev)
    if P == 0:
        return WindowConfidence(nan, nan.clone(), nan.clone(), nan.clone(),
                                torch.zeros(0, dtype=torch.int64, device=dev))
    W, Wt = int(window), int(tail)
    off, ln, start = paths.off, paths.ln, paths.start
    # Per unique token: the group confidence (inf where the window is not full), and per node
    # the min of G over its tokens.
    G, node_min = _path_groups(paths, W)
    path_min = _path_reduce(node_min, paths.up, torch.minimum)

    T = start[lv] + ln[lv]
    total = paths.base[lv] + paths.nsum[lv]
    Tf = T.to(torch.float64)
    has = T > 0
    mean = torch.where(has, total / Tf.clamp(min=1), nan)
    nt = torch.clamp(T, max=Wt)
    tail_v = torch.where(has, (total - paths.prefix(lv, T - nt)) / nt.clamp(min=1).to(torch.float64), nan)
    full = T >= W
    lowest = torch.where(full, path_min[lv], mean)

    bottom = mean.clone()
    ngroups = torch.where(full, T - W + 1, 0)
    if bool(full.any()):
        bottom[full] = _bottom10(G, off, ln, start, par, lv[full], ngroups[full], W)
    return WindowConfidence(lowest, bottom, tail_v, mean, T)


def path_window_means(
    confidence: torch.Tensor, node_offsets: torch.Tensor, parent: torch.Tensor, *, window: int = 2048
) -> torch.Tensor:
    """float64 [U]: for the value at path position p (0-based) of its node's path, the mean of the last
    min(window, p + 1) values of that path ending at it (the window crosses node boundaries). Inputs as in
    `tree_window_confidence`; full windows are the G of its module doc."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    paths = _paths(confidence, node_offsets, parent)
    G, _ = _path_groups(paths, int(window))
    U, N = paths.C.numel() - 1, paths.ln.numel()
    node = torch.repeat_interleave(torch.arange(N, device=paths.C.device), paths.ln)
    t = torch.arange(U, device=paths.C.device)
    seen = paths.start[node] + (t - paths.off[node]) + 1  # values on the path up to and including t
    running = (paths.base[node] + paths.C[t + 1] - paths.C[paths.off[node]]) / seen.to(torch.float64)
    return torch.where(seen >= window, G, running)


# --------------------------------------------------------------------------- per-token pass


def window_groups(prefix, seg_offsets, seg_base, seg_pos, far, far_off, window):
    """Windowed means over segmented prefix sums, and their per-segment minima (float64).

    Flat values v[0..U) are split into N contiguous segments ``v[seg_offsets[n]:seg_offsets[n+1]]``;
    ``prefix`` [U+1] float64 holds ``C(t) = sum v[:t]``. Segment n continues a sequence whose
    prefix value before its first element is ``seg_base[n]`` and whose first element sits at
    position ``seg_pos[n]`` (int64) of that sequence. With W = ``window``, element t (local index
    k = t - seg_offsets[n], position p = seg_pos[n] + k) has a full window iff p >= W - 1, and then

    - k >= W - 1 (window inside the segment): ``out[t] = (C(t+1) - C(t+1-W)) / W``
    - k <  W - 1 (window starts before it):   ``out[t] = (seg_base[n] + (C(t+1) - C(o_n)) - far[j]) / W``
      with ``far[j]`` (float64) the sequence's prefix value at the window start, stored for the
      segment's such elements k in [max(0, W-1-seg_pos[n]), min(len_n, W-1)) from ``far_off[n]`` on.

    ``out[t] = +inf`` where the window is not full. Returns ``(out [U], seg_min [N])``, seg_min the
    min of ``out`` over each segment (+inf for an empty one). Dispatches on ``backend.select``.
    """
    if backend.select(prefix.device) == "triton" and prefix.numel() > 1:
        return _window_groups_triton(prefix, seg_offsets, seg_base, seg_pos, far, far_off, int(window))
    return _window_groups_torch(prefix, seg_offsets, seg_base, seg_pos, far, far_off, int(window))


def _window_groups_torch(prefix, seg_offsets, seg_base, seg_pos, far, far_off, W):
    dev = prefix.device
    U, N = prefix.numel() - 1, seg_offsets.numel() - 1
    ln = seg_offsets[1:] - seg_offsets[:-1]
    nid = torch.repeat_interleave(torch.arange(N, device=dev), ln)
    t = torch.arange(U, device=dev)
    o = seg_offsets[nid]
    k = t - o
    full = seg_pos[nid] + k >= W - 1
    cross = k < W - 1
    hi = prefix[t + 1]
    local = hi - prefix[(t + 1 - W).clamp(min=0)]
    k0 = (W - 1 - seg_pos[nid]).clamp(min=0)
    j = torch.where(full & cross, far_off[nid] + k - k0, 0)
    lo = far[j] if far.numel() else torch.zeros(U, dtype=torch.float64, device=dev)
    g = torch.where(cross, (seg_base[nid] + (hi - prefix[o])) - lo, local) / W
    out = torch.where(full, g, torch.tensor(float("inf"), dtype=torch.float64, device=dev))
    seg_min = torch.full((N,), float("inf"), dtype=torch.float64, device=dev)
    seg_min.scatter_reduce_(0, nid, out, reduce="amin", include_self=True)
    return out, seg_min


_kernel = None


def _build_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def _segment_min_combine(a_seg, a_val, b_seg, b_val):
        return b_seg, tl.where(a_seg == b_seg, tl.minimum(a_val, b_val), b_val)

    # The kernel resolves the combine function by name among this module's globals.
    globals()["_segment_min_combine"] = _segment_min_combine

    @triton.jit(do_not_specialize=["U", "N", "W", "SEARCH_STEPS"])
    def _window_groups_kernel(
        prefix_ptr, seg_off_ptr, seg_base_ptr, seg_pos_ptr, far_ptr, far_off_ptr,
        out_ptr, seg_min_ptr, U, N, W, SEARCH_STEPS,
        BLOCK: tl.constexpr,
    ):
        INF: tl.constexpr = float("inf")
        lane = tl.arange(0, BLOCK)
        t = tl.program_id(0).to(tl.int64) * BLOCK + lane
        m = t < U
        # Segment of each element: the last n with seg_offsets[n] <= t (skips empty segments).
        lo = tl.zeros([BLOCK], tl.int64)
        hi = tl.zeros([BLOCK], tl.int64) + N
        for _ in range(0, SEARCH_STEPS):
            mid = (lo + hi) // 2
            go = tl.load(seg_off_ptr + mid, mask=m, other=0) <= t
            lo = tl.where(go, mid, lo)
            hi = tl.where(go, hi, mid)
        seg = lo
        o = tl.load(seg_off_ptr + seg, mask=m, other=0)
        o_next = tl.load(seg_off_ptr + seg + 1, mask=m, other=0)
        p0 = tl.load(seg_pos_ptr + seg, mask=m, other=0)
        w = W.to(tl.int64)
        k = t - o
        full = m & (p0 + k >= w - 1)
        cross = k < w - 1
        c_hi = tl.load(prefix_ptr + t + 1, mask=m, other=0.0)
        c_lo = tl.load(prefix_ptr + t + 1 - w, mask=full & ~cross, other=0.0)
        c_o = tl.load(prefix_ptr + o, mask=full & cross, other=0.0)
        base = tl.load(seg_base_ptr + seg, mask=full & cross, other=0.0)
        k0 = tl.maximum(w - 1 - p0, 0)
        f = tl.load(far_off_ptr + seg, mask=full & cross, other=0)
        far = tl.load(far_ptr + f + k - k0, mask=full & cross, other=0.0)
        g = tl.where(cross, (base + (c_hi - c_o)) - far, c_hi - c_lo) / w.to(tl.float64)
        g = tl.where(full, g, INF)
        tl.store(out_ptr + t, g, mask=m)
        # Segment minima: a segmented min-scan over the tile (segments are sorted), then one
        # atomic min at the last element of each segment's run in this tile.
        _, run_min = tl.associative_scan((seg, g), 0, _segment_min_combine)
        last = m & ((t + 1 == o_next) | (lane == BLOCK - 1) | (t + 1 == U))
        tl.atomic_min(seg_min_ptr + seg, run_min, mask=last & (run_min < INF))

    return _window_groups_kernel


def _window_groups_triton(prefix, seg_offsets, seg_base, seg_pos, far, far_off, W, block=None):
    import triton

    global _kernel
    if _kernel is None:
        _kernel = _build_kernel()
    dev = prefix.device
    U, N = prefix.numel() - 1, seg_offsets.numel() - 1
    out = torch.empty(U, dtype=torch.float64, device=dev)
    seg_min = torch.full((N,), float("inf"), dtype=torch.float64, device=dev)
    if far.numel() == 0:  # never read; a valid pointer all the same
        far = prefix
    if block is None:  # few, large tiles in the interpreter (it runs one program at a time)
        block = max(16, min(triton.next_power_of_2(U), 1 << 14 if backend.interpreting() else 1024))
    _kernel[(triton.cdiv(U, block),)](
        prefix.contiguous(), seg_offsets.contiguous(), seg_base.contiguous(), seg_pos.contiguous(),
        far.contiguous(), far_off.contiguous(), out, seg_min, U, N, W, max(1, N.bit_length()),
        BLOCK=block, num_warps=4,
    )
    return out, seg_min


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
