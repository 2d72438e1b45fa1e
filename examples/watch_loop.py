"""A generation loop with online early stopping (DeepConf online) through treecredit's Watch stream.

A stand-in sampler produces, per step, one token and its top-20 log-probs for every running sequence (vLLM and
SGLang return these with `logprobs=20`). The loop sends each step's rows to the session, drops the sequences
the server stops, starts new ones until the server says to stop sampling, and prints the final vote.

    python examples/watch_loop.py                    # starts a local server for the run
    python examples/watch_loop.py --target host:port
"""

from __future__ import annotations

import argparse

import numpy as np

import treecredit

TOPK = 20


class ToySampler:
    """Each sequence has a hidden quality: confident sequences tend to reach the right answer "42"."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.quality: dict[int, float] = {}

    def begin(self, sequence: int) -> None:
        self.quality[sequence] = self.rng.uniform(0.3, 1.5)

    def step(self, sequences: list[int]) -> np.ndarray:
        """float32 [len(sequences), TOPK]: the top-k log-probs of each sequence's next token."""
        scale = np.array([self.quality[s] for s in sequences])[:, None]
        return (-np.sort(self.rng.exponential(1.0, (len(sequences), TOPK)), axis=1) * scale).astype(np.float32)

    def answer(self, sequence: int) -> str:
        return "42" if self.rng.random() < self.quality[sequence] / 1.5 else str(self.rng.integers(0, 9))


def generate(client: treecredit.CreditClient, *, parallel: int = 8, length: int = 256,
             budget: int = 64) -> treecredit.WatchSummary:
    sampler = ToySampler()
    answers: dict[int, str] = {}  # what each finished sequence answered
    with client.watch(warmup=8, keep_percent=90, window=64, consensus=0.9, budget=budget) as session:
        running: dict[int, int] = {}  # sequence -> tokens generated
        next_id = 0
        while running or (session.stop_sampling is None and next_id < budget):
            # Keep the batch full until the server says to stop sampling (decisions arrive asynchronously, so
            # the loop also counts the budget itself).
            while session.stop_sampling is None and next_id < budget and len(running) < parallel:
                sampler.begin(next_id)
                session.start(next_id)
                running[next_id] = 0
                next_id += 1
            batch = [s for s in running if not session.is_stopped(s)]
            for s in set(running) - set(batch):  # stopped by the server: free the slot
                del running[s]
            if not batch:
                continue
            session.tokens(batch, topk_logprobs=sampler.step(batch), num_tokens=[1] * len(batch))
            for s in batch:
                running[s] += 1
                if running[s] == length:  # end of sequence
                    answers[s] = sampler.answer(s)
                    session.finish(s, answer=answers[s])
                    del running[s]
    check(session.summary, next_id, answers, length)
    return session.summary


def check(summary: treecredit.WatchSummary, started: int, answers: dict[int, str], length: int) -> None:
    """What the loop saw, against the summary: one verdict per started sequence; a kept one was finished with all
    its tokens, the others were stopped (some while their last tokens were in flight); each answer's vote is the sum
    of its kept sequences' lowest window confidences, and the winner is the answer with most of it."""
    assert sorted(summary.trajectory.tolist()) == list(range(started))
    kept = summary.verdict == "kept"
    assert set(summary.trajectory[kept].tolist()) <= answers.keys()
    assert (summary.num_tokens[kept] == length).all() and (summary.verdict[~kept] == "stopped").all()
    assert (summary.stop_token[~kept] == summary.num_tokens[~kept] - 1).all()
    votes: dict[str, float] = {}
    for trajectory, lowest in zip(summary.trajectory[kept].tolist(), summary.lowest[kept].tolist()):
        votes[answers[trajectory]] = votes.get(answers[trajectory], 0.0) + lowest
    assert summary.votes.keys() == votes.keys()
    assert all(abs(summary.votes[a] - votes[a]) < 1e-9 * abs(votes[a]) for a in votes)
    best = min(votes, key=lambda a: (-votes[a], a))
    assert summary.answer == best and abs(summary.consensus - votes[best] / sum(votes.values())) < 1e-12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="a running treecredit server; default: start one for this run")
    args = parser.parse_args()
    server = None
    if args.target is None:
        from treecredit_server.process import start_server

        server = start_server("--metrics-port", "-1")
        server.drain_log()
        args.target = server.target
    try:
        with treecredit.CreditClient(args.target) as client:
            summary = generate(client)
        verdicts = {str(v): int(n) for v, n in zip(*np.unique(summary.verdict, return_counts=True))}
        print(f"threshold {summary.threshold:.3f}; trajectories {len(summary.trajectory)}: {verdicts}")
        votes = {answer: round(weight, 1) for answer, weight in summary.votes.items()}
        print(f"answer {summary.answer!r} with consensus {summary.consensus:.2f}; votes {votes}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
