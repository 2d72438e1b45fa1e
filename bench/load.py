"""Load: many concurrent clients on loopback for a bounded time, then the server's memory once the load stops.

Each phase runs, over `--seconds`, `--unary-clients` asyncio clients calling Score and Filter back to back on
random forests, and `--trajectories` Watch trajectories streaming top-k log-probs in `--sessions` sessions (the
Prompt loop of bench/watch.py, offered `--rate` tokens/s). Two phases, so that a leak across sessions shows as
memory that grows from one phase to the next.

Output, one JSON line each: per phase and method, calls, errors, p50/p99 latency (ms) and calls/s (Watch: tokens
and tokens/s); the server's VmRSS (MiB) before the load, at its peak during each phase (sampled every 0.1 s),
and `--settle` seconds after each phase. Exit status 1 if any call failed.

Usage: python bench/load.py [--seconds 20] [--unary-clients 16] [--trajectories 256] [--sessions 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc
import numpy as np

import treecredit
from treecredit_server.process import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from forests import random_forest  # noqa: E402
from watch import Prompt  # noqa: E402


def vm_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


async def unary_client(client, forests, until: float, latencies: dict, errors: dict) -> None:
    rng = np.random.default_rng(len(latencies["Score"]))
    while time.perf_counter() < until:
        forest = forests[int(rng.integers(len(forests)))]
        method = "Score" if rng.random() < 0.5 else "Filter"
        started = time.perf_counter()
        try:
            await (client.score(forest) if method == "Score" else client.filter(forest, window=8, tail=8))
            latencies[method].append(time.perf_counter() - started)
        except grpc.RpcError as error:
            errors[method][error.code().name] = errors[method].get(error.code().name, 0) + 1


def watch_process(target: str, args, seconds: float) -> tuple[int, list, dict]:
    """The Watch load, in a process of its own so that the unary clients' work does not starve its loop."""

    async def main():
        async with treecredit.AsyncCreditClient(target, timeout=60) as client:
            return await watch_load(client, args, time.perf_counter() + seconds)

    return asyncio.run(main())


async def watch_load(client, args, until: float) -> tuple[int, list, dict]:
    rng = np.random.default_rng(0)
    scales = rng.uniform(0.5, 2.0, 64)
    pool = (-np.sort(rng.exponential(1.0, (64, args.chunk, 20)), axis=2) * scales[:, None, None]).astype(np.float32)
    prompts = [Prompt(client.watch(warmup=16, keep_percent=50, window=64, consensus=1.0, budget=1 << 40), pool,
                      np.random.default_rng(s), args.trajectories // args.sessions, 256)
               for s in range(args.sessions)]
    errors: dict[str, int] = {}
    tokens, started = 0, time.perf_counter()
    try:
        for prompt in prompts:
            await prompt.refill()
        while time.perf_counter() < until:
            tokens += sum(await asyncio.gather(*(prompt.step(args.chunk) for prompt in prompts)))
            ahead = tokens / args.rate - (time.perf_counter() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        summaries = [await prompt.session.close() for prompt in prompts]
        assert all(len(s.trajectory) == prompt.next_id for s, prompt in zip(summaries, prompts))
    except grpc.RpcError as error:
        errors[error.code().name] = errors.get(error.code().name, 0) + 1
    return tokens, [x for prompt in prompts for x in prompt.latencies], errors


async def phase(target: str, args, pid: int, number: int, pool: ProcessPoolExecutor) -> list[dict]:
    rng = np.random.default_rng(number)
    forests = [random_forest(rng, groups=4, trees_per_group=4, max_depth=4, max_tokens=32, topk=4)
               for _ in range(16)]
    latencies = {"Score": [], "Filter": []}
    errors = {"Score": {}, "Filter": {}}
    peak = vm_rss_mib(pid)
    async with treecredit.AsyncCreditClient(target, timeout=60) as client:
        started = time.perf_counter()
        until = started + args.seconds
        watching = asyncio.get_running_loop().run_in_executor(pool, watch_process, target, args, args.seconds)
        work = asyncio.gather(*(unary_client(client, forests, until, latencies, errors)
                                for _ in range(args.unary_clients)), watching)
        while not work.done():
            peak = max(peak, vm_rss_mib(pid))
            await asyncio.wait([work], timeout=0.1)
        (*_, (tokens, stop_latencies, watch_errors)) = work.result()
        elapsed = time.perf_counter() - started
    lines = []
    for method, values in latencies.items():
        ms = np.array(values or [np.nan]) * 1000
        lines.append({"bench": "load", "phase": number, "method": method, "calls": len(values),
                      "errors": sum(errors[method].values()), "error_codes": errors[method],
                      "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
                      "calls_per_s": round(len(values) / elapsed, 1)})
    ms = np.array(stop_latencies) * 1000
    lines.append({"bench": "load", "phase": number, "method": "Watch", "trajectories": args.trajectories,
                  "sessions": args.sessions, "tokens": tokens, "tokens_per_s": round(tokens / elapsed),
                  "errors": sum(watch_errors.values()), "error_codes": watch_errors, "stops": len(ms),
                  "stop_p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
                  "stop_p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None})
    await asyncio.sleep(args.settle)
    lines.append({"bench": "load", "phase": number, "rss_peak_mib": round(peak, 1),
                  "rss_after_mib": round(vm_rss_mib(pid), 1), "settle_s": args.settle})
    return lines


async def run(target: str, args, pid: int) -> int:
    async with treecredit.AsyncCreditClient(target) as client:  # warm up: imports, first-call paths
        forest = random_forest(np.random.default_rng(0), topk=4)
        await client.score(forest)
        await client.filter(forest)
    print(json.dumps({"bench": "load", "phase": 0, "rss_before_mib": round(vm_rss_mib(pid), 1)}), flush=True)
    failed = 0
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # no fork under gRPC
        for number in range(1, args.phases + 1):
            for line in await phase(target, args, pid, number, pool):
                failed += line.get("errors", 0)
                print(json.dumps(line), flush=True)
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each load phase")
    parser.add_argument("--phases", type=int, default=2)
    parser.add_argument("--unary-clients", type=int, default=16)
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--rate", type=float, default=2e5, help="Watch tokens/s offered")
    parser.add_argument("--settle", type=float, default=5, help="seconds after a phase before memory is read")
    args = parser.parse_args()
    server = start_server("--metrics-port", "-1")
    server.drain_log()
    try:
        failed = asyncio.run(run(server.target, args, server.process.pid))
    finally:
        server.stop()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
