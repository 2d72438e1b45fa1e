"""Forward + backward of a small causal transformer on the packed forest against the unpacked padded batch.

    python bench/pack.py [--repeat 5] [--threads 1]

Three forests of prompt trees at about 0%, 50% and 90% shared tokens (1 - unique / trajectory tokens), each
through a live server's Pack (one tree per microbatch, all padded to one length and stacked) and through the
padded batch of one row per trajectory (`PackedForest.unpack`, as `ScoreResult.padded()` lays it out). Model:
4 layers, width 128, 4 heads, vocabulary 2048, float32, dense boolean attention masks (the tree mask from
`subtree_end`; causal for the padded rows), on CPU. Time: one fresh process runs the two layouts' steps
alternately (so the load of a shared machine hits both), median of `--repeat` after one warm-up each. Memory:
one fresh process per layout, peak resident memory of one step above what the process held before it.
Prints JSON lines: time ratio packed / unpacked against the token ratio; goal: time ratio <= 1.25 x token ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import time

import numpy as np

import treecredit
from treecredit_server.process import start_server

WIDTH, LAYERS, HEADS, VOCAB = 128, 4, 4, 2048

# Prompt trees: (trees, prompt tokens, leaves per prompt, response tokens per leaf).
SHAPES = {"0%": (16, 128, 1, 128), "50%": (6, 128, 4, 64), "90%": (1, 384, 16, 16)}


def prompt_forest(trees: int, prompt: int, leaves: int, response: int, seed: int = 0) -> treecredit.Forest:
    rng = np.random.default_rng(seed)
    forest = treecredit.Forest()
    for tree in range(trees):
        root = forest.add(None, rng.integers(0, VOCAB, prompt), group=tree // 2, loss_mask=np.zeros(prompt, bool))
        for _ in range(leaves):
            forest.add(root, rng.integers(0, VOCAB, response), reward=float(rng.integers(0, 2)))
    return forest


def build_model():
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.mlp_norm = torch.nn.LayerNorm(WIDTH), torch.nn.LayerNorm(WIDTH)
            self.qkv, self.out = torch.nn.Linear(WIDTH, 3 * WIDTH), torch.nn.Linear(WIDTH, WIDTH)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(WIDTH, 4 * WIDTH), torch.nn.GELU(),
                                           torch.nn.Linear(4 * WIDTH, WIDTH))

        def forward(self, x, mask):
            batch, length, _ = x.shape
            q, k, v = self.qkv(self.norm(x)).view(batch, length, 3, HEADS, -1).transpose(1, 3).unbind(2)
            attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
            x = x + self.out(attended.transpose(1, 2).reshape(batch, length, WIDTH))
            return x + self.mlp(self.mlp_norm(x))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.position = torch.nn.Embedding(VOCAB, WIDTH), torch.nn.Embedding(4096, WIDTH)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
            self.head = torch.nn.Linear(WIDTH, VOCAB)

        def forward(self, ids, positions, mask):
            x = self.embed(ids) + self.position(positions)
            for block in self.blocks:
                x = block(x, mask)
            return self.head(x)

    torch.manual_seed(0)
    return Model()


def _runner(batch: dict, threads: int):
    """A model and one forward + backward of a policy-gradient loss on `batch`, as a function of nothing."""
    import torch

    torch.set_num_threads(threads)
    model = build_model()
    ids, positions = torch.as_tensor(batch["ids"]), torch.as_tensor(batch["positions"])
    mask, predicted_by = torch.as_tensor(batch["mask"]), torch.as_tensor(batch["predicted_by"])
    weight = torch.as_tensor(batch["weight"])

    def step() -> None:
        model.zero_grad()
        logprobs = model(ids, positions, mask).log_softmax(-1)
        rows = logprobs.flatten(0, 1)[predicted_by.clamp(min=0).flatten()]
        chosen = rows.gather(-1, ids.flatten()[:, None])[:, 0]
        (-(chosen * weight.flatten()).sum()).backward()

    return step


def time_both(batches: dict[str, dict], repeat: int, threads: int, results) -> None:
    """Median seconds of a step per layout, the layouts alternating so that load on the machine hits both."""
    steps = {layout: _runner(batch, threads) for layout, batch in batches.items()}
    times = {layout: [] for layout in steps}
    for round_ in range(repeat + 1):
        for layout, step in steps.items():
            started = time.perf_counter()
            step()
            if round_:  # the first round warms up
                times[layout].append(time.perf_counter() - started)
    results.put({layout: statistics.median(seconds) for layout, seconds in times.items()})


def peak_memory(batch: dict, threads: int, results) -> None:
    """Peak resident bytes of one step above what this fresh process held before it."""
    step = _runner(batch, threads)
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * resource.getpagesize()
    step()
    results.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before)


def in_fresh_process(target, *args):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    result = results.get()
    process.join()
    return result


def batches(packed_parts: list[treecredit.PackedForest], whole: treecredit.PackedForest) -> dict[str, dict]:
    """The stacked packed microbatches and the padded batch, as the arrays a step runs on."""
    packed = {
        "ids": np.stack([p.input_ids for p in packed_parts]),
        "positions": np.stack([p.position_ids for p in packed_parts]),
        "mask": np.stack([(np.arange(p.num_tokens)[None, :] <= np.arange(p.num_tokens)[:, None])
                          & (np.arange(p.num_tokens)[:, None] < p.subtree_end[None, :]) for p in packed_parts]),
        # Row parent[t] of the same microbatch predicts t: flattened, batch * length + parent.
        "predicted_by": np.stack([np.where(p.parent >= 0, i * p.num_tokens + p.parent, -1)
                                  for i, p in enumerate(packed_parts)]),
        "weight": np.stack([p.weight * p.loss_mask for p in packed_parts]).astype(np.float32),
    }
    ids = whole.unpack(whole.input_ids)
    rows, length = ids.shape
    lengths = whole.unpack(np.ones(whole.num_tokens, np.int64)).sum(1)
    column = np.arange(length)
    padded = {
        "ids": ids,
        "positions": np.broadcast_to(column, ids.shape).copy(),
        "mask": np.broadcast_to(column[None, :] <= column[:, None], (rows, length, length)).copy(),
        "predicted_by": np.where((column[None, :] > 0) & (column[None, :] < lengths[:, None]),
                                 np.arange(rows)[:, None] * length + column[None, :] - 1, -1),
        "weight": whole.unpack(whole.weight).astype(np.float32),
    }
    return {"packed": packed, "unpacked": padded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    server = start_server()
    server.drain_log()
    try:
        with treecredit.CreditClient(server.target, timeout=120) as client:
            prepared = {}
            for sharing, shape in SHAPES.items():
                forest = prompt_forest(*shape)
                tree_tokens = shape[1] + shape[2] * shape[3]
                budget = -(-tree_tokens // 64) * 64  # one tree per microbatch, all of one length
                parts = client.pack(forest, microbatch_tokens=budget, align=budget)
                whole = client.pack(forest)
                trajectory = int(whole.unpack(np.ones(whole.num_tokens, np.int64)).sum())
                prepared[sharing] = (batches(parts, whole), whole.num_tokens / trajectory, len(parts), budget)
    finally:
        server.stop()

    for sharing, (arrays, token_ratio, microbatches, budget) in prepared.items():
        seconds = in_fresh_process(time_both, arrays, args.repeat, args.threads)
        peak = {layout: in_fresh_process(peak_memory, batch, args.threads) for layout, batch in arrays.items()}
        for layout, batch in arrays.items():
            print(json.dumps({"sharing": sharing, "layout": layout, "shape": list(batch["ids"].shape),
                              "median_s": round(seconds[layout], 4), "peak_mib": round(peak[layout] / 2**20, 1)}))
        time_ratio = seconds["packed"] / seconds["unpacked"]
        print(json.dumps({
            "sharing": sharing, "token_ratio": round(token_ratio, 3), "time_ratio": round(time_ratio, 3),
            "time_ratio / token_ratio": round(time_ratio / token_ratio, 3), "goal": 1.25,
            "memory_ratio": round(peak["packed"] / peak["unpacked"], 3),
            "microbatches": microbatches, "microbatch_tokens": budget,
        }))


if __name__ == "__main__":
    main()
