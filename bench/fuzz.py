"""A long fuzz run against every RPC of a real server: what docs/SECURITY.md reports.

    .venv/bin/python bench/fuzz.py --minutes 5

Starts a server (default limits), then until the time is up sends, RPC by RPC in turn: the extreme-value sweep
of tests/fuzz/extremes.py (every field of every request at int64 min/max, 2^62, 2^31, -1, 0, NaN, +-inf, empty,
huge shapes over no data), then hypothesis's mutated and random requests of tests/fuzz/strategies.py (Watch:
event streams; TokenStatsStream: chunk lists). Prints the requests sent, the statuses seen per RPC, the server's
resident memory before and after and its peak, and exits 1 on any INTERNAL, UNKNOWN, crash or hang.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzz.extremes import message_class, substitutions  # noqa: E402
from fuzz.strategies import messages, mutated, requests, valid_request, watch_events  # noqa: E402
from test_extremes import base_requests  # noqa: E402
from test_fuzz import SERVICE, method  # noqa: E402
from treecredit_server.process import start_server  # noqa: E402

DEADLINE = 30
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
       grpc.StatusCode.UNAVAILABLE}


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


class Fuzzer:
    def __init__(self, channel: grpc.Channel, pid: int):
        self.channel, self.pid = channel, pid
        self.statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.bad: list[str] = []

    def send(self, name: str, request) -> None:
        description = SERVICE.methods_by_name[name]
        call = method(self.channel, name)
        try:
            if description.client_streaming:
                result = call(iter(request), timeout=DEADLINE)
                if description.server_streaming:
                    list(result)
            else:
                call(request, timeout=DEADLINE)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
        self.statuses[name][code.name] += 1
        if code in BAD:
            self.bad.append(f"{name}: {code.name} {details}")

    def sweep(self, name: str) -> None:
        """The extreme-value sweep of every base request of `name`."""
        for base in base_requests(name):
            if isinstance(base, list):
                for i, message in enumerate(base):
                    for _, _, changed in substitutions(message):
                        self.send(name, [*base[:i], changed, *base[i + 1:]])
            else:
                for _, _, changed in substitutions(base):
                    self.send(name, changed)

    def random(self, name: str, examples: int, round_seed: int) -> None:
        """`examples` hypothesis requests for `name`: mutated valid ones and random ones."""
        description = SERVICE.methods_by_name[name]
        if name == "Watch":
            strategy = watch_events()
        elif description.client_streaming:
            def chunk_lists(s: int):
                chunks = valid_request(name, np.random.default_rng(s)) or [message_class(description.input_type)()]
                return st.tuples(*[st.one_of(mutated(c), st.just(c)) for c in chunks]).map(list)
            strategy = st.one_of(st.integers(0, 2**16).flatmap(chunk_lists),
                                 st.lists(messages(message_class(description.input_type)), max_size=4))
        else:
            strategy = requests(name, message_class(description.input_type))

        @seed(round_seed)
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(request=strategy)
        def run(request):
            self.send(name, request)

        run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=50, help="hypothesis examples per RPC per round")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()

    server = start_server("--metrics-port", "-1")
    server.drain_log()
    pid = server.process.pid
    rss_before = status_kib(pid, "VmRSS")
    names = [m.name for m in SERVICE.methods]
    started = time.monotonic()
    stop_at = started + 60 * args.minutes
    with grpc.insecure_channel(server.target) as channel:
        fuzzer = Fuzzer(channel, pid)
        for name in names:
            fuzzer.sweep(name)
        swept = sum(sum(c.values()) for c in fuzzer.statuses.values())
        rounds = 0
        while time.monotonic() < stop_at and server.process.poll() is None:
            for name in names:
                fuzzer.random(name, args.batch, round_seed=rounds * len(names) + names.index(name))
            rounds += 1
    alive = server.process.poll() is None
    rss_after, rss_peak = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")) if alive else (0, 0)
    exit_code = server.stop() if alive else server.process.returncode
    summary = {
        "minutes": round((time.monotonic() - started) / 60, 2),
        "requests": sum(sum(c.values()) for c in fuzzer.statuses.values()),
        "sweep_requests": swept,
        "hypothesis_rounds": rounds,
        "statuses": {name: dict(fuzzer.statuses[name]) for name in names},
        "internal_or_unknown": len(fuzzer.bad),
        "server_alive": alive,
        "server_exit_code": exit_code,
        "rss_mib": {"before": round(rss_before / 1024, 1), "after": round(rss_after / 1024, 1),
                    "peak": round(rss_peak / 1024, 1)},
    }
    print(json.dumps(summary, indent=2))
    for line in fuzzer.bad[:20]:
        print("BAD", line)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if alive and exit_code == 0 and not fuzzer.bad else 1


if __name__ == "__main__":
    sys.exit(main())
