"""Filter, Watch and SuggestForks messages <-> the compute layer's arrays. Decoding validates; no math here."""

from __future__ import annotations

import math

import numpy as np

from treecredit import _wire
from treecredit._request_errors import InvalidArgument
from treecredit.v1 import confidence_pb2 as pb
from treecredit_server.codec import fields
from treecredit_server.codec.forest import MAX_TOPK, decode_forest
from treecredit_server.codec.reflection import decode_forest_reflection
from treecredit_server.compute.filtering import Metric, Verdicts
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.forks import Forks, Ranking
from treecredit_server.compute.trace_confidence import has_token_confidence
from treecredit_server.compute.watch import Chunk, Decisions, Finish, Start, Step, Summary, WatchOptions
from treecredit_server.config import Limits

_METRICS = {
    pb.CONFIDENCE_METRIC_UNSPECIFIED: Metric.LOWEST,
    pb.CONFIDENCE_METRIC_LOWEST: Metric.LOWEST,
    pb.CONFIDENCE_METRIC_BOTTOM10: Metric.BOTTOM10,
    pb.CONFIDENCE_METRIC_TAIL: Metric.TAIL,
    pb.CONFIDENCE_METRIC_MEAN: Metric.MEAN,
}
_RANKINGS = {
    pb.FORK_RANKING_UNSPECIFIED: Ranking.NEG_LOGPROB,
    pb.FORK_RANKING_NEG_LOGPROB: Ranking.NEG_LOGPROB,
    pb.FORK_RANKING_WINDOW_CONFIDENCE: Ranking.WINDOW_CONFIDENCE,
}


# -- Filter --------------------------------------------------------------------------------------
def decode_filter(request: pb.FilterRequest, limits: Limits) -> tuple[ForestArrays, dict]:
    forest = decode_forest(request.forest, limits)
    _require_token_confidence(forest)
    options = {
        "metric": fields.enum(_METRICS, request.metric, "metric", pb.ConfidenceMetric),
        "keep_percent": fields.percent(request, "keep_percent", "", 90.0),
        "window": fields.window(request, "window", ""),
        "tail": fields.window(request, "tail", ""),
        "zero_variance": request.zero_variance,
    }
    if request.HasField("answer"):
        answer = _wire.decode(request.answer, "answer", dtypes=_wire.INTEGER, ndim=1, max_elements=limits.max_nodes)
        if len(answer) != forest.num_nodes:
            raise InvalidArgument("answer", f"has {len(answer)} entries for {forest.num_nodes} nodes")
        bad = (answer < -1) | (answer >= len(request.answer_labels))
        if bad.any():
            index = int(np.argmax(bad))
            raise InvalidArgument(f"answer[{index}]", f"{answer[index]} is neither -1 nor an index into "
                                                      f"answer_labels ({len(request.answer_labels)} labels)")
        options["answer"] = answer.astype(np.int64)
    if request.HasField("reflection"):
        options["reflection"] = decode_forest_reflection(request.reflection, forest, limits)
    return forest, options


def _require_token_confidence(forest: ForestArrays) -> None:
    if not has_token_confidence(forest):
        raise InvalidArgument("forest.confidence", "token confidences or top-k log-probs (topk_logprobs) are required")


def encode_filter(verdicts: Verdicts) -> pb.FilterResponse:
    enc = _wire.encode
    vote = verdicts.vote
    response = pb.FilterResponse(
        keep=enc(verdicts.keep, np.bool_), metric=enc(verdicts.metric, np.float64),
        reason=enc(verdicts.reason, np.int32), threshold=enc(verdicts.threshold, np.float64),
        query_keep=enc(verdicts.query_keep, np.bool_), query_reason=enc(verdicts.query_reason, np.int32),
        zero_variance=enc(verdicts.zero_variance, np.bool_),
        vote_answer=enc(vote.answer, np.int64), vote_consensus=enc(vote.consensus, np.float64),
        votes_group=enc(vote.group, np.int64), votes_answer=enc(vote.answer_of_row, np.int64),
        votes_weight=enc(vote.weight, np.float64),
    )
    if verdicts.reflection_spread is not None:
        response.reflection_spread.CopyFrom(enc(verdicts.reflection_spread, np.float64))
    return response


# -- SuggestForks --------------------------------------------------------------------------------
def decode_forks(request: pb.SuggestForksRequest, limits: Limits) -> tuple[ForestArrays, dict]:
    forest = decode_forest(request.forest, limits)
    if request.top_n < 0:
        raise InvalidArgument("top_n", f"must be >= 0, got {request.top_n}")
    tail_guard = fields.optional(request, "tail_guard", 16)
    if tail_guard < 0:
        raise InvalidArgument("tail_guard", f"must be >= 0, got {tail_guard}")
    ranking = fields.enum(_RANKINGS, request.ranking, "ranking", pb.ForkRanking)
    if ranking is Ranking.NEG_LOGPROB:
        if "logprobs" not in forest.tokens:
            raise InvalidArgument("forest.logprobs", "is required to rank fork positions by -logprob")
        fields.refuse_first("forest.logprobs", np.isnan(forest.tokens["logprobs"]), "is NaN")
    else:
        _require_token_confidence(forest)
    return forest, {
        "ranking": ranking,
        "top_n": request.top_n or 4,
        "tail_guard": tail_guard,
        "window": fields.window(request, "window", ""),
    }


def encode_forks(forks: Forks) -> pb.SuggestForksResponse:
    enc = _wire.encode
    return pb.SuggestForksResponse(root=enc(forks.root, np.int64), node=enc(forks.node, np.int64),
                                   offset=enc(forks.offset, np.int64), score=enc(forks.score, np.float64),
                                   rank=enc(forks.rank, np.int64))


# -- Watch ---------------------------------------------------------------------------------------
def decode_watch_open(message: pb.WatchOpen) -> WatchOptions:
    window = fields.window(message, "window", "open.")
    fork_history = fields.optional(message, "fork_history", window)
    if not 0 <= fork_history <= fields.MAX_WINDOW:
        raise InvalidArgument("open.fork_history", f"must be in [0, {fields.MAX_WINDOW}], got {fork_history}")
    for field in ("warmup", "budget"):
        if fields.optional(message, field, 1) < (0 if field == "warmup" else 1):
            raise InvalidArgument(f"open.{field}", f"must be >= {0 if field == 'warmup' else 1}, "
                                                   f"got {getattr(message, field)}")
    threshold = fields.optional(message, "threshold", None)
    if threshold is not None and not math.isfinite(threshold):
        raise InvalidArgument("open.threshold", f"must be finite, got {threshold}")
    consensus = fields.optional(message, "consensus", 0.95)
    if not (math.isfinite(consensus) and 0 < consensus <= 1):
        raise InvalidArgument("open.consensus", f"must be in (0, 1], got {consensus}")
    return WatchOptions(warmup=fields.optional(message, "warmup", 16),
                        keep_percent=fields.percent(message, "keep_percent", "open.", 90.0), threshold=threshold,
                        window=window, consensus=consensus, budget=fields.optional(message, "budget", 512),
                        fork_history=fork_history)


def decode_watch_step(request: pb.WatchRequest, limits: Limits) -> Step:
    """One request of a Watch stream: whether it opens the session, its starts, chunk and finishes, in that order."""
    starts = [Start(start.trajectory, start.parent if start.HasField("parent") else None, start.fork_offset,
                    f"starts[{j}]") for j, start in enumerate(request.starts)]
    finishes = [Finish(finish.trajectory, finish.answer if finish.HasField("answer") else None, f"finishes[{j}]")
                for j, finish in enumerate(request.finishes)]
    chunk = decode_chunk(request.chunk, limits) if request.HasField("chunk") else None
    return Step(request.HasField("open"), starts, chunk, finishes)


def decode_chunk(message: pb.TokenChunk, limits: Limits, name: str = "chunk") -> Chunk:
    def array(field: str, dtypes, ndim: int = 1, width: int = 1) -> np.ndarray:
        return _wire.decode(getattr(message, field), f"{name}.{field}", dtypes=dtypes, ndim=ndim,
                            max_elements=limits.max_tokens * width)

    trajectory, num_tokens = array("trajectory", _wire.INTEGER), array("num_tokens", _wire.INTEGER)
    if len(trajectory) != len(num_tokens):
        raise InvalidArgument(f"{name}.num_tokens", f"has {len(num_tokens)} entries for {len(trajectory)} trajectories")
    total = _wire.check_sizes(num_tokens, f"{name}.num_tokens", limits.max_tokens, "tokens")
    if message.HasField("confidence") == message.HasField("topk_logprobs"):
        raise InvalidArgument(f"{name}.confidence", "exactly one of confidence and topk_logprobs is required")
    if message.HasField("confidence"):
        values, field = array("confidence", _wire.FLOAT), "confidence"
        bad, problem = ~np.isfinite(values), "is not finite"
    else:
        values, field = array("topk_logprobs", _wire.LOW_FLOAT, 2, MAX_TOPK), "topk_logprobs"
        if values.shape[1] > MAX_TOPK:
            raise InvalidArgument(f"{name}.topk_logprobs.shape", f"k = {values.shape[1]} exceeds {MAX_TOPK}")
        bad, problem = fields.unusable_topk(values), fields.TOPK_PROBLEM
    if len(values) != total:
        raise InvalidArgument(f"{name}.{field}", f"has {len(values)} tokens but num_tokens sums to {total}")
    fields.refuse_first(f"{name}.{field}", bad, problem)
    return Chunk(trajectory.astype(np.int64, copy=False), num_tokens.astype(np.int64, copy=False), **{field: values})


def encode_decisions(decisions: Decisions) -> pb.WatchResponse:
    response = pb.WatchResponse(stops=[
        pb.StopTrajectory(trajectory=s.trajectory, token=s.token, window_mean=s.window_mean, threshold=s.threshold)
        for s in decisions.stops
    ])
    if decisions.threshold is not None:
        response.threshold = decisions.threshold
    if decisions.stop_sampling is not None:
        stop = decisions.stop_sampling
        response.stop_sampling.CopyFrom(pb.StopSampling(reason=int(stop.reason), answer=stop.answer,
                                                        consensus=stop.consensus))
    return response


def encode_summary(summary: Summary, *, idle: bool = False) -> pb.WatchResponse:
    enc = _wire.encode
    labels = sorted(summary.votes)
    return pb.WatchResponse(summary=pb.WatchSummary(
        trajectory=enc(summary.trajectory, np.int64), verdict=enc(summary.verdict, np.int32),
        num_tokens=enc(summary.num_tokens, np.int64), lowest=enc(summary.lowest, np.float64),
        stop_token=enc(summary.stop_token, np.int64), threshold=summary.threshold, answer=summary.answer,
        consensus=summary.consensus, vote_labels=labels,
        vote_weight=enc([summary.votes[a] for a in labels], np.float64), idle_closed=idle,
    ))
