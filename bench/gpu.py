"""GPU check + timing of every treecredit kernel (triton backend). Run via bench/gpu.sh.

1. Correctness: each kernel against a float64 reference on fresh random inputs (the checks
   that tests/kernels run in the interpreter, at realistic vocabulary sizes).
2. Timing (triton.testing.do_bench, median ms): token_stats vs torch eager and, if installed,
   Liger-Kernel's fused selective log-softmax (logprob only, so it does less work). Achieved
   bandwidth = bytes of logits read / time, reported against this card's own copy bandwidth
   (a device-to-device copy of a 2 GiB buffer timed in the same run; bytes read + written / time).

Prints one JSON line per result; exits non-zero if a check fails. `--smoke` runs the same code
on CPU under TRITON_INTERPRET=1 at toy sizes (timings meaningless) to test the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels"))

import torch  # noqa: E402

FAILED = []


def emit(**kw):
    print(json.dumps(kw), flush=True)


def bench_ms(fn, smoke):
    if smoke:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    import triton.testing

    return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))


def check(name, got, ref, rtol, atol):
    got, ref = got.double(), ref.double()
    same_nonfinite = torch.equal(torch.isfinite(got), torch.isfinite(ref)) and torch.equal(
        got[~torch.isfinite(ref)].nan_to_num(0.0, 1.0, -1.0), ref[~torch.isfinite(ref)].nan_to_num(0.0, 1.0, -1.0)
    )
    fin = torch.isfinite(ref)
    err = ((got[fin] - ref[fin]).abs() - rtol * ref[fin].abs()).max().item() if fin.any() else 0.0
    ok = same_nonfinite and err <= atol
    emit(check=name, ok=bool(ok), worst_excess_abs=err, atol=atol, rtol=rtol)
    if not ok:
        FAILED.append(name)


def ref_token_stats(x, ids, k, tau):
    """Vectorised float64 reference on the device (memory T*V*8*3; used on a few hundred rows)."""
    z = x.double() / tau
    lse = torch.logsumexp(z, -1)
    p = torch.softmax(z, -1)
    ent = -torch.special.xlogy(p, p).sum(-1)
    top = torch.topk(z, min(k, z.shape[1]), -1).values
    fin = top > float("-inf")
    conf = lse - torch.where(fin, top, 0.0).sum(-1) / fin.sum(-1).clamp(min=1)
    return z.gather(1, ids[:, None]).squeeze(1) - lse, ent, conf, lse


def eager(x, ids, k=20):
    z = x.float()
    logp = torch.log_softmax(z, -1)
    lp = logp.gather(1, ids[:, None]).squeeze(1)
    p = logp.exp()
    ent = -(p * logp).sum(-1)
    conf = -torch.topk(logp, k, -1).values.mean(-1)
    return lp, ent, conf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    smoke = args.smoke
    if smoke:
        if os.environ.get("TRITON_INTERPRET") != "1":
            sys.exit("--smoke needs TRITON_INTERPRET=1")
        dev = "cpu"
    else:
        if not torch.cuda.is_available():
            sys.exit("bench/gpu.py: no CUDA device; this benchmark only runs on a GPU machine")
        dev = "cuda"
    os.environ["TREECREDIT_BACKEND"] = "triton"
    from treecredit_kernels import reflection_reward, token_stats, topk_confidence, tree_window_confidence
    # The float64 references live with the kernel tests.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "kernels"))
    from test_reflection_reward import reflection_reward_reference
    from test_topk_confidence import topk_confidence_reference
    from test_tree_window_confidence import tree_window_confidence_reference

    g = torch.Generator(device=dev).manual_seed(0)
    emit(device=torch.cuda.get_device_name() if not smoke else "cpu-interpreter", torch=torch.__version__)

    # ---- copy bandwidth of this card
    nbytes = (2 << 30) if not smoke else (8 << 20)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src), smoke)
    copy_gbs = 2 * nbytes / (ms * 1e-3) / 1e9
    emit(bench="copy", bytes=nbytes, ms=ms, read_plus_write_GBps=copy_gbs)
    del src, dst

    # ---- token_stats correctness
    cases = [(64, 32003, torch.float32, 20, 1.0, 0.0), (32, 152064, torch.bfloat16, 20, 0.7, 0.0),
             (16, 262144, torch.float16, 64, 1.0, 0.2), (8, 50, torch.float32, 100, 1.0, 0.0),
             (16, 4096, torch.float32, 1, 1.0, 0.0)]
    if smoke:
        cases = [(2, 3001, torch.float32, 20, 1.0, 0.0), (2, 2000, torch.bfloat16, 64, 0.7, 0.2)]
    for T, V, dt, k, tau, mask in cases:
        x = (torch.randn(T, V, generator=g, device=dev) * 4).to(dt)
        if mask:
            x[torch.rand(T, V, generator=g, device=dev) < mask] = float("-inf")
        ids = torch.randint(0, V, (T,), generator=g, device=dev)
        got = token_stats(x, ids, k=k, temperature=tau)
        ref = ref_token_stats(x, ids, k, tau)
        for nm, a, b in zip(("logprob", "entropy", "confidence", "logsumexp"), got, ref):
            check(f"token_stats/{nm}/T{T}V{V}{str(dt)[6:]}k{k}", a, b, 1e-5, 1e-4)
        del x

    # ---- token_stats timing
    sizes = [(4096, 32000, torch.float32), (2048, 152064, torch.bfloat16), (4096, 262144, torch.bfloat16)]
    if smoke:
        sizes = [(2, 4096, torch.float32)]
    try:
        from liger_kernel.ops.grpo_loss import fused_selective_log_softmax as liger_lp
    except Exception as e:  # optional
        liger_lp = None
        emit(note=f"liger-kernel not available ({type(e).__name__}); skipping its timing")
    for T, V, dt in sizes:
        x = (torch.randn(T, V, generator=g, device=dev) * 4).to(dt)
        ids = torch.randint(0, V, (T,), generator=g, device=dev)
        read = x.numel() * x.element_size()
        row = dict(bench="token_stats", T=T, V=V, dtype=str(dt)[6:], k=20, logits_bytes=read)
        ms_t = bench_ms(lambda: token_stats(x, ids, k=20), smoke)
        row.update(triton_ms=ms_t, triton_GBps=read / (ms_t * 1e-3) / 1e9)
        row["frac_of_copy_bw"] = row["triton_GBps"] / copy_gbs
        try:
            if not smoke:
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            ms_e = bench_ms(lambda: eager(x, ids), smoke)
            row.update(eager_ms=ms_e, speedup_vs_eager=ms_e / ms_t)
            if not smoke:
                row["eager_extra_MiB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                torch.cuda.reset_peak_memory_stats()
                token_stats(x, ids, k=20)
                row["triton_extra_MiB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        except torch.OutOfMemoryError:
            row["eager_ms"] = "OOM"
        if liger_lp is not None and not smoke:
            try:
                x3, ids3 = x.view(1, T, V), ids.view(1, T)
                ms_l = bench_ms(lambda: liger_lp(x3, ids3, temperature=1.0), smoke)
                row.update(liger_logprob_only_ms=ms_l, liger_GBps=read / (ms_l * 1e-3) / 1e9)
            except Exception as e:
                row["liger_error"] = repr(e)[:200]
        emit(**row)
        del x

    # ---- topk_confidence
    T, k = (200000, 20) if not smoke else (64, 20)
    lp = torch.log_softmax(torch.randn(T, 64, generator=g, device=dev) * 3, -1)
    x = torch.topk(lp, k, -1).values
    x[: T // 10, k // 2:] = float("-inf")
    got = topk_confidence(x)
    n_chk = min(T, 2000)
    ref = topk_confidence_reference(x[:n_chk].cpu())
    check("topk_confidence/confidence", got.confidence[:n_chk].cpu(), ref.confidence, 1e-5, 1e-5)
    check("topk_confidence/entropy_topk", got.entropy_topk[:n_chk].cpu(), ref.entropy_topk, 1e-5, 1e-5)
    ms = bench_ms(lambda: topk_confidence(x), smoke)
    emit(bench="topk_confidence", T=T, k=k, ms=ms, GBps=x.numel() * 4 / (ms * 1e-3) / 1e9)

    # ---- tree_window_confidence (random forest; reference materialises paths on CPU)
    import numpy as np

    rng = np.random.default_rng(0)
    N = 2000 if not smoke else 60
    par = np.array([-1 if i == 0 or rng.random() < 0.02 else int(rng.integers(max(0, i - 50), i)) for i in range(N)])
    ln = rng.integers(0, 200 if not smoke else 20, N)
    off = np.concatenate([[0], np.cumsum(ln)])
    c = (rng.random(int(off[-1])) * 10).astype(np.float32)
    leaf = np.ones(N, bool)
    leaf[par[par >= 0]] = False
    leaves = np.nonzero(leaf)[0]
    W = 512 if not smoke else 16
    args_t = (torch.from_numpy(c).to(dev), torch.from_numpy(off).to(dev), torch.from_numpy(par).to(dev),
              torch.from_numpy(leaves).to(dev))
    got = tree_window_confidence(*args_t, window=W, tail=W)
    ref = tree_window_confidence_reference(c, off, par, leaves, window=W, tail=W)
    for nm in ("lowest", "bottom10", "tail", "mean"):
        check(f"tree_window_confidence/{nm}", getattr(got, nm).cpu(), getattr(ref, nm), 1e-12, 1e-10)
    ms = bench_ms(lambda: tree_window_confidence(*args_t, window=W, tail=W), smoke)
    os.environ["TREECREDIT_BACKEND"] = "torch"
    ms_torch = bench_ms(lambda: tree_window_confidence(*args_t, window=W, tail=W), smoke)
    os.environ["TREECREDIT_BACKEND"] = "triton"
    emit(bench="tree_window_confidence", nodes=N, unique_tokens=len(c), trajectories=len(leaves),
         trajectory_tokens=int(ref.num_tokens.sum()), window=W, ms=ms, torch_backend_ms=ms_torch)
    # The per-token pass alone (Triton kernel vs its torch twin), on the arguments the call above used.
    twc = sys.modules["treecredit_kernels.tree_window_confidence"]
    cap, real_wg = {}, twc.window_groups
    twc.window_groups = lambda *a: cap.setdefault("a", a) and real_wg(*a)
    tree_window_confidence(*args_t, window=W, tail=W)
    twc.window_groups = real_wg
    ms_k = bench_ms(lambda: twc._window_groups_triton(*cap["a"]), smoke)
    ms_kt = bench_ms(lambda: twc._window_groups_torch(*cap["a"]), smoke)
    emit(bench="window_groups_kernel", unique_tokens=len(c), far_values=int(cap["a"][4].numel()), triton_ms=ms_k,
         torch_ms=ms_kt, approx_GBps=len(c) * 24 / (ms_k * 1e-3) / 1e9)

    # ---- reflection_reward
    Q = 512 if not smoke else 4
    G = rng.integers(1, 17, Q)
    L = rng.integers(1, 300, Q)
    ell = -np.abs(rng.normal(size=int((G * L).sum())))
    b = rng.normal(size=int(L.sum()))
    args_r = (torch.from_numpy(ell).to(dev), torch.from_numpy(G).to(dev), torch.from_numpy(L).to(dev),
              torch.from_numpy(b).to(dev))
    got = reflection_reward(*args_r)
    ref = reflection_reward_reference(ell, G, L, b)
    for nm in ref._fields:
        check(f"reflection_reward/{nm}", getattr(got, nm).cpu(), getattr(ref, nm), 1e-12, 1e-12)
    ms = bench_ms(lambda: reflection_reward(*args_r), smoke)
    os.environ["TREECREDIT_BACKEND"] = "torch"
    ms_torch = bench_ms(lambda: reflection_reward(*args_r), smoke)
    os.environ["TREECREDIT_BACKEND"] = "triton"
    emit(bench="reflection_reward", queries=Q, elements=len(ell), ms=ms, torch_backend_ms=ms_torch,
         approx_GBps=3 * len(ell) * 8 / (ms * 1e-3) / 1e9)

    emit(summary="FAIL" if FAILED else "OK", failed=FAILED)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
