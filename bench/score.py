"""Score a 1M-node forest end to end through the SDK, against the floor of the same work done in-process;
`ScoreResult.padded()` on a forest of long trajectories, against filling arrays of its outputs' size; and Score
and Pack on a deep forest against a bushy one of the same size.

    python bench/score.py [--groups 4000] [--trees 4] [--nodes-per-tree 62] [--repeat 5]
                          [--padded-groups 400] [--padded-node-tokens 160] [--depth 100000]

End to end = Forest.from_arrays + encode + send + decode/validate/compute/encode + receive + parse.
Floor = the forest checks and the compute layer on the same arrays in this process + a bare loopback echo of the
request bytes (a gRPC server in its own process that returns what it gets).

padded() = its first call on a freshly scored forest (tree_grpo: 100k nodes, about 20M trajectory tokens with the
defaults), once with a loss mask (90% ones) and once without. Baseline = np.full of arrays of its outputs' shapes
and dtypes (allocate and write each once), interleaved with padded() so that both see the same load; wall and
CPU time of this process, medians. Peak memory: tracemalloc's peak during one call, over the outputs' bytes.

Deep against bushy: 8 trees, each a chain of `--depth` nodes with a one-node fork off every 4th (depth ~100,000),
against the random recursive trees above, both ~1M nodes of 1-15 tokens; Score and Pack end to end, and the
ratio deep / bushy (goal <= 2).
Prints JSON lines; `ratio` lines follow each part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import time
import tracemalloc
from concurrent import futures

import grpc
import numpy as np

import treecredit
from treecredit.client import CHANNEL_OPTIONS, score_request
from treecredit_server.compute import credit
from treecredit_server.codec.forest import validated
from treecredit_server.process import start_server

ECHO = "/bench.Echo/Echo"


def random_forest_arrays(groups: int, trees: int, nodes_per_tree: int, seed: int = 0,
                         node_tokens: int = 64) -> dict[str, np.ndarray]:
    """Random recursive trees: node j of a tree hangs under a uniformly chosen earlier node; 1..node_tokens-1
    tokens per node."""
    rng = np.random.default_rng(seed)
    num_trees = groups * trees
    local = np.tile(np.arange(nodes_per_tree), num_trees)
    tree_start = np.repeat(np.arange(num_trees) * nodes_per_tree, nodes_per_tree)
    parent = np.where(local == 0, -1, tree_start + np.floor(rng.random(local.size) * local).astype(np.int64))
    is_leaf = np.bincount(parent[parent >= 0], minlength=parent.size) == 0
    return {
        "parent": parent,
        "group": np.repeat(np.arange(groups), trees * nodes_per_tree),
        "reward": np.where(is_leaf, rng.integers(0, 2, parent.size).astype(np.float64), np.nan),
        "num_tokens": rng.integers(1, node_tokens, parent.size),
    }


def deep_forest_arrays(trees: int, depth: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Long chains with forks: each tree is a chain of `depth` nodes with a leaf forked off every 4th node."""
    rng = np.random.default_rng(seed)
    per_tree = depth + depth // 4
    local = np.arange(per_tree)
    chain_parent = np.where(local < depth, local - 1, (local - depth) * 4)
    parent = np.concatenate([np.where(chain_parent < 0, -1, chain_parent + t * per_tree) for t in range(trees)])
    is_leaf = np.bincount(parent[parent >= 0], minlength=parent.size) == 0
    return {
        "parent": parent,
        "group": np.repeat(np.arange(trees) // 2, per_tree),
        "reward": np.where(is_leaf, rng.integers(0, 2, parent.size).astype(np.float64), np.nan),
    }


def with_short_tokens(arrays: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """1-15 tokens per node, with ids: the forests of the deep / bushy comparison (Pack needs ids)."""
    rng = np.random.default_rng(seed)
    num_tokens = rng.integers(1, 16, arrays["parent"].size)
    return {**arrays, "num_tokens": num_tokens, "token_ids": rng.integers(0, 1 << 15, int(num_tokens.sum()))}


def deep_against_bushy(target: str, bushy: dict, deep: dict, estimator: str, repeat: int) -> list[dict]:
    """Score and Pack end to end on both forests; rows of median seconds and the ratios deep / bushy."""
    rows = []
    with treecredit.CreditClient(target) as client:
        calls = {"Score": lambda arrays: client.score(treecredit.Forest.from_arrays(**arrays), estimator),
                 "Pack": lambda arrays: client.pack(treecredit.Forest.from_arrays(**arrays), estimator)}
        for name, call in calls.items():
            medians = {}
            for shape, arrays in (("bushy", bushy), ("deep", deep)):
                call(arrays)
                depth = treecredit.Topology.of(arrays["parent"]).max_depth
                medians[shape] = best_and_median(lambda: call(arrays), repeat)[1]
                rows.append({"what": f"{name} end to end, {shape}", "nodes": len(arrays["parent"]), "depth": depth,
                             "tokens": len(arrays["token_ids"]), "median_s": medians[shape]})
            rows.append({"what": f"{name} ratio deep / bushy", "ratio_median": medians["deep"] / medians["bushy"],
                         "goal": 2.0})
    return rows


def serve_echo(port_queue) -> None:
    identity = lambda data: data  # noqa: E731
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _: request, identity, identity)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(2), options=CHANNEL_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port_queue.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


def best_and_median(function, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def padded_rows(client: treecredit.CreditClient, arrays: dict[str, np.ndarray], estimator: str,
                repeat: int, loss_mask: np.ndarray | None) -> list[dict]:
    """padded() against np.full of its outputs (wall and CPU time), and its peak traced memory over its outputs'
    bytes."""
    result = client.score(treecredit.Forest.from_arrays(**arrays, loss_mask=loss_mask), estimator)

    def fresh() -> treecredit.ScoreResult:  # nothing cached: a new forest, as a trainer's next batch
        return dataclasses.replace(result, forest=treecredit.Forest.from_arrays(**arrays, loss_mask=loss_mask),
                                   _padded=None, _lengths=None)

    outputs = fresh().padded()
    shapes = [(array.shape, array.dtype) for array in outputs[:2]]
    output_bytes = sum(array.nbytes for array in outputs[:2])
    del outputs

    def fill() -> None:
        for shape, dtype in shapes:
            np.full(shape, 1, dtype)

    def timed(function) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        function()
        return time.perf_counter() - started, time.process_time() - cpu

    fills, pads = [], []
    for _ in range(repeat):  # interleaved, so that both see the same load
        fills.append(timed(fill))
        pending = fresh()
        pads.append(timed(pending.padded))
        del pending
    (fill_wall, fill_cpu), (pad_wall, pad_cpu) = (np.median(times, axis=0) for times in (fills, pads))
    pending = fresh()
    tracemalloc.start()
    pending.padded()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    label = "with a loss mask" if loss_mask is not None else "without a loss mask"
    return [
        {"what": f"padded() {label}", "nodes": len(arrays["parent"]), "leaves": len(pending.forest.leaves),
         "trajectory_tokens": int(pending._lengths.sum()),
         "output_shape": list(shapes[0][0]), "output_bytes": output_bytes},
        {"what": "np.full of padded()'s outputs", "median_s": fill_wall, "median_cpu_s": fill_cpu},
        {"what": "padded()", "median_s": pad_wall, "median_cpu_s": pad_cpu, "peak_traced_bytes": peak},
        {"what": f"ratio padded() / np.full, {label}", "ratio_median": pad_wall / fill_wall,
         "ratio_cpu_median": pad_cpu / fill_cpu, "goal": 2.0},
        {"what": f"ratio padded() peak memory / outputs, {label}", "ratio": peak / output_bytes, "goal": 1.5},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=4000)
    parser.add_argument("--trees", type=int, default=4)
    parser.add_argument("--nodes-per-tree", type=int, default=62)
    parser.add_argument("--estimator", default="tree_grpo")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--padded-groups", type=int, default=400)
    parser.add_argument("--padded-node-tokens", type=int, default=160)
    parser.add_argument("--depth", type=int, default=100_000)
    args = parser.parse_args()

    arrays = random_forest_arrays(args.groups, args.trees, args.nodes_per_tree)
    nodes = len(arrays["parent"])
    estimator = credit.Estimator(args.estimator)

    def in_process() -> None:
        forest = validated(arrays["parent"], arrays["group"], arrays["reward"], arrays["num_tokens"])
        credit.score(forest, estimator)

    request_bytes = score_request(treecredit.Forest.from_arrays(**arrays), args.estimator).SerializeToString()
    ports = multiprocessing.Queue()
    echo_process = multiprocessing.Process(target=serve_echo, args=(ports,), daemon=True)
    echo_process.start()
    server = start_server()
    server.drain_log()
    try:
        identity = lambda data: data  # noqa: E731
        with grpc.insecure_channel(f"127.0.0.1:{ports.get()}", options=CHANNEL_OPTIONS) as channel:
            echo = channel.unary_unary(ECHO, request_serializer=identity, response_deserializer=identity)
            echo(b"warm-up")
            echo_best, echo_median = best_and_median(lambda: echo(request_bytes), args.repeat)
        compute_best, compute_median = best_and_median(in_process, args.repeat)

        with treecredit.CreditClient(server.target) as client:
            def end_to_end() -> None:
                client.score(treecredit.Forest.from_arrays(**arrays), args.estimator)

            end_to_end()
            e2e_best, e2e_median = best_and_median(end_to_end, args.repeat)
            long_trajectories = random_forest_arrays(args.padded_groups, args.trees, args.nodes_per_tree,
                                                     node_tokens=args.padded_node_tokens)
            loss_mask = np.random.default_rng(1).random(int(long_trajectories["num_tokens"].sum())) < 0.9
            padded = [row for mask in (loss_mask, None)
                      for row in padded_rows(client, long_trajectories, args.estimator, args.repeat, mask)]
            deep = deep_forest_arrays(8, args.depth)
            shapes = deep_against_bushy(server.target, with_short_tokens(arrays), with_short_tokens(deep),
                                        args.estimator, args.repeat)
    finally:
        server.stop()
        echo_process.terminate()

    rows = [
        {"what": "in-process compute", "nodes": nodes, "best_s": compute_best, "median_s": compute_median},
        {"what": "loopback echo of the request", "bytes": len(request_bytes), "best_s": echo_best, "median_s": echo_median},
        {"what": "end to end through the SDK", "estimator": args.estimator, "best_s": e2e_best, "median_s": e2e_median},
        {
            "what": "ratio end to end / (compute + echo)",
            "ratio_median": e2e_median / (compute_median + echo_median),
            "ratio_best": e2e_best / (compute_best + echo_best),
            "goal": 2.0,
        },
        *shapes,
    ]
    for row in rows + padded:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
