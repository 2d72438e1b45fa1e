"""Watch throughput and decision latency: concurrent trajectories streaming top-k log-probs through one server.

The bench starts `python -m treecredit_server` as a subprocess, opens `--sessions` Watch sessions (one per
prompt) over one asyncio channel and keeps `--trajectories` trajectories running across them: every step sends,
per session, one request holding the next `--chunk` tokens of each of its running trajectories ([chunk, k]
top-k log-probs each). A trajectory that gets STOP, or reaches `--length` tokens, is finished and replaced by a
new one. Token confidences differ by trajectory, so that about half of them fall below the warm-up threshold.

Figures (one JSON line each): tokens/s the server accepted over the run, and the decision latency of every STOP:
from sending the request that held the stopping token to the client's reader seeing the STOP. Goal: >= 1M
tokens/s sustained and p99 decision latency <= 20 ms.

The client offers `--rate` tokens/s (default 1M; 0 sends as fast as it can, which measures peak throughput but
then the latency is mostly time spent queued behind earlier requests).

Usage: python bench/watch.py [--seconds 20] [--rate 1e6] [--trajectories 256] [--sessions 8] [--chunk 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import numpy as np

import treecredit


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "treecredit_server", "--host", "127.0.0.1", "--port", "0",
                                "--metrics-port", "-1", *args],
                               stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "serving":
            return process, f"127.0.0.1:{event['port']}"
    raise RuntimeError(f"server exited with {process.wait()} before serving")


class Prompt:
    """One session and its running trajectories."""

    def __init__(self, session, pool: np.ndarray, rng: np.random.Generator, width: int, length: int):
        self.session, self.pool, self.rng, self.length = session, pool, rng, length
        self.next_id = 0
        self.running: list[int] = []
        self.kind: dict[int, int] = {}
        self.sent: dict[int, int] = {}     # tokens sent per running trajectory
        self.sent_at: dict[tuple[int, int], float] = {}  # (trajectory, chunk index) -> send time
        self.latencies: list[float] = []
        self.width = width

    async def refill(self) -> None:
        while len(self.running) < self.width:
            t = self.next_id
            self.next_id += 1
            self.running.append(t)
            self.kind[t] = int(self.rng.integers(len(self.pool)))
            self.sent[t] = 0
            await self.session.start(t)

    async def step(self, chunk: int) -> int:
        """Send the next chunk of every running trajectory; retire the stopped and the finished ones."""
        for t in [t for t in self.running if self.session.is_stopped(t) or self.sent[t] >= self.length]:
            stop = self.session.stops.get(t)
            if stop is not None:
                self.latencies.append(stop.received_at - self.sent_at[(t, stop.token // chunk)])
            self.running.remove(t)
            await self.session.finish(t, answer=str(t % 5))
        await self.refill()
        now = time.perf_counter()
        blocks = self.pool[[self.kind[t] for t in self.running]].reshape(-1, self.pool.shape[-1])
        await self.session.tokens(self.running, topk_logprobs=blocks, num_tokens=[chunk] * len(self.running))
        for t in self.running:
            self.sent_at[(t, self.sent[t] // chunk)] = now
            self.sent[t] += chunk
        return chunk * len(self.running)


async def run(target: str, args) -> dict:
    rng = np.random.default_rng(0)
    # 64 kinds of trajectory, each a fixed [chunk, k] block of sorted top-k log-probs at its own scale.
    scales = rng.uniform(0.5, 2.0, 64)
    pool = -np.sort(rng.exponential(1.0, (64, args.chunk, args.topk)), axis=2) * scales[:, None, None]
    pool = pool.astype(np.float32)
    per_session = args.trajectories // args.sessions
    async with treecredit.AsyncCreditClient(target) as client:
        prompts = []
        for s in range(args.sessions):
            session = client.watch(warmup=16, keep_percent=50, window=args.window, consensus=1.0, budget=1 << 40)
            prompts.append(Prompt(session, pool, np.random.default_rng(s), per_session, args.length))
        for prompt in prompts:
            await prompt.refill()
        tokens, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            sent = await asyncio.gather(*(prompt.step(args.chunk) for prompt in prompts))
            tokens += sum(sent)
            ahead = tokens / args.rate - (time.perf_counter() - started) if args.rate else 0
            if ahead > 0:  # a generator produces tokens at some rate; faster than that only queues them
                await asyncio.sleep(ahead)
        elapsed = time.perf_counter() - started
        summaries = [await prompt.session.close() for prompt in prompts]
    accepted = int(sum(s.num_tokens.sum() for s in summaries))
    latencies = np.array([x for prompt in prompts for x in prompt.latencies]) * 1000
    return {
        "bench": "watch", "offered_tokens_per_s": args.rate, "trajectories": args.trajectories, "sessions": args.sessions, "chunk": args.chunk,
        "topk": args.topk, "window": args.window, "seconds": round(elapsed, 2),
        "tokens_sent": tokens, "tokens_accepted": accepted,
        "tokens_per_s": round(tokens / elapsed), "stops": len(latencies),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 3) if len(latencies) else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 3) if len(latencies) else None,
        "throughput_ratio": round(tokens / elapsed / 1e6, 3),  # of the 1M tokens/s goal
        "latency_ratio": round(float(np.percentile(latencies, 99)) / 20, 3) if len(latencies) else None,  # of 20 ms
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--topk", type=int, default=20)
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--rate", type=float, default=1e6, help="tokens/s to offer (0: as fast as possible)")
    args = parser.parse_args()
    process, target = start_server()
    try:
        print(json.dumps(asyncio.run(run(target, args))), flush=True)
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
