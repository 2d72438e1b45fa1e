"""CPU benchmark of token_stats (torch backend) against torch eager on the same input.

Prints one JSON line per size, with the time ratio and the extra-memory ratio of token_stats
over eager. Goal: time_ratio <= 1.0, mem_ratio <= 0.25.

Torch eager is the plain way to get the same four numbers:
    z = logits.float() / tau; logp = log_softmax(z); logprob = logp.gather(ids);
    p = logp.exp(); entropy = -(p * logp).sum(-1); conf = -topk(logp, k).mean(-1)

Extra memory = peak resident memory beyond the input. Each measurement runs in a fresh
subprocess: the input is built in chunks (no large temporaries), the kernel's high-water mark
is reset (`echo 5 > /proc/self/clear_refs`, Linux), VmRSS is read, the op runs once, and
extra = VmHWM - VmRSS_before. The subprocess runs with MALLOC_MMAP_THRESHOLD_=65536 so glibc
serves every buffer >= 64 KiB with its own mmap and unmaps it on free: RSS then tracks torch's
live CPU allocations (no free-but-resident heap can absorb a temporary). Where clear_refs is not allowed the
subprocess falls back to ru_maxrss deltas, which are valid as long as the input build peaked
below the run (it does: the input is written in place).

Usage: python bench/kernels.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

SIZES = [(4096, 32000, "float32"), (2048, 152064, "bfloat16")]
QUICK_SIZES = [(512, 32000, "float32"), (256, 152064, "bfloat16")]
K = 20


def make_input(T: int, V: int, dtype: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(T, V, dtype=getattr(torch, dtype))
    step = max(1, (32 << 20) // (V * 4))
    for r in range(0, T, step):
        x[r:r + step] = torch.randn(min(step, T - r), V, generator=g) * 3
    ids = torch.randint(0, V, (T,), generator=g)
    return x, ids


def eager(logits, ids, k=K, temperature=1.0):
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    logp = torch.log_softmax(z, dim=-1)
    lp = logp.gather(1, ids[:, None]).squeeze(1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    conf = -torch.topk(logp, k, dim=-1).values.mean(-1)
    lse = torch.logsumexp(z, dim=-1)
    return lp, ent, conf, lse


def ours(logits, ids, k=K, temperature=1.0):
    from treecredit_kernels.token_stats import _token_stats_torch

    return _token_stats_torch(logits, ids, min(k, logits.shape[1]), temperature)


IMPLS = {"eager": eager, "token_stats": ours}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def measure_memory_child(impl: str, T: int, V: int, dtype: str) -> None:
    """Runs in a subprocess: prints the extra peak bytes of one call of `impl`."""
    import resource

    x, ids = make_input(T, V, dtype)
    IMPLS["token_stats"](x[:2], ids[:2])  # import + warm the code paths on a tiny slice
    IMPLS["eager"](x[:2], ids[:2])
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM-after-clear_refs"
        before = _status_kb("VmRSS")
        IMPLS[impl](x, ids)
        peak = _status_kb("VmHWM")
    except OSError:
        method = "ru_maxrss-delta"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        IMPLS[impl](x, ids)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"extra_bytes": max(0, peak - before) * 1024, "method": method}))


def measure_memory(impl: str, T: int, V: int, dtype: str) -> dict:
    # Fixed glibc thresholds: every allocation >= 64 KiB is its own mmap, returned on free, so
    # freed memory cannot hide a later allocation and RSS follows live allocations.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="131072")
    out = subprocess.run(
        [sys.executable, __file__, "--_mem-child", impl, str(T), str(V), dtype],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_it(fn, x, ids, repeat: int) -> float:
    fn(x, ids)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x, ids)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--_mem-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._mem_child:
        impl, T, V, dtype = args._mem_child
        measure_memory_child(impl, int(T), int(V), dtype)
        return
    for T, V, dtype in QUICK_SIZES if args.quick else SIZES:
        x, ids = make_input(T, V, dtype)
        # correctness of the comparison: same numbers (float32 tolerance)
        a, b = ours(x, ids), eager(x, ids)
        max_err = max(float((u - v).abs().max()) for u, v in zip(a, b))
        t_ours = time_it(ours, x, ids, args.repeat)
        t_eager = time_it(eager, x, ids, args.repeat)
        del x, ids
        m_ours = measure_memory("token_stats", T, V, dtype)
        m_eager = measure_memory("eager", T, V, dtype)
        print(json.dumps({
            "kernel": "token_stats", "backend": "torch", "device": "cpu", "threads": torch.get_num_threads(),
            "T": T, "V": V, "dtype": dtype, "k": K,
            "time_s": round(t_ours, 4), "eager_time_s": round(t_eager, 4),
            "time_ratio": round(t_ours / t_eager, 3),
            "extra_mib": round(m_ours["extra_bytes"] / 2**20, 1),
            "eager_extra_mib": round(m_eager["extra_bytes"] / 2**20, 1),
            "mem_ratio": round(m_ours["extra_bytes"] / max(1, m_eager["extra_bytes"]), 4),
            "mem_method": m_ours["method"], "max_abs_diff_vs_eager": max_err,
            "goal_met": t_ours <= t_eager and m_ours["extra_bytes"] <= 0.25 * m_eager["extra_bytes"],
        }), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels"))
    main()
