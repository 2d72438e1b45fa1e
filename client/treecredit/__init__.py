"""treecredit: step-level credit for LLM RL from rollout trees. The client SDK (grpcio, protobuf, numpy only).

    forest = treecredit.Forest()
    root = forest.add(None, prompt_ids, group="q1")
    ...
    with treecredit.CreditClient("127.0.0.1:50051") as client:
        result = client.score(forest, estimator="tree_grpo")

The names that need grpc (the clients, channel options and errors) load on first use, so the gRPC-free modules
(`treecredit.topology`, `treecredit._wire`, `treecredit._request_errors`, which the server's compute layer uses)
can be imported without loading grpc.
"""

import importlib

from treecredit.confidence import FilterResult, ForkSuggestions
from treecredit.forest import Forest
from treecredit.packing import PackedForest
from treecredit.results import DepthProfile, Preferences, PrefixSharing, ScoreResult
from treecredit.curriculum import CurriculumHistory, CurriculumPlan
from treecredit.reflection import Reflection, ReflectionResult
from treecredit.srl import StepSimilarity, StepSimilarityResult, srl_batch
from treecredit.toolpo import ToolCalls
from treecredit.shared_memory import SharedLogits, SharedMemoryRegion
from treecredit.tokens import TokenStatsResult, TraceConfidence
from treecredit.topology import Topology
from treecredit.watch import AsyncWatchSession, WatchSession, WatchSummary
from treecredit import report  # after results: report.py builds on them

# name -> the module it is loaded from on first use (these modules import grpc)
_NEEDING_GRPC = {
    **dict.fromkeys(("RETRY", "RETRY_POLICY", "ROUND_ROBIN", "service_config", "tls_credentials"), "channel"),
    **dict.fromkeys(("AsyncCreditClient", "CreditClient"), "client"),
    **dict.fromkeys(("ServiceError", "RequestError", "InvalidArgument", "ResourceExhausted", "FailedPrecondition",
                     "Unauthenticated", "PermissionDenied", "Unavailable", "DeadlineExceeded", "Cancelled",
                     "Unimplemented", "Internal"), "errors"),
}

__all__ = [
    "RETRY",
    "RETRY_POLICY",
    "ROUND_ROBIN",
    "service_config",
    "AsyncCreditClient",
    "CreditClient",
    "DepthProfile",
    "Forest",
    "PackedForest",
    "ServiceError",
    "RequestError",
    "InvalidArgument",
    "ResourceExhausted",
    "FailedPrecondition",
    "Unauthenticated",
    "PermissionDenied",
    "Unavailable",
    "DeadlineExceeded",
    "Cancelled",
    "Unimplemented",
    "Internal",
    "Preferences",
    "PrefixSharing",
    "ScoreResult",
    "SharedLogits",
    "SharedMemoryRegion",
    "TokenStatsResult",
    "TraceConfidence",
    "CurriculumHistory",
    "CurriculumPlan",
    "Reflection",
    "ReflectionResult",
    "StepSimilarity",
    "StepSimilarityResult",
    "ToolCalls",
    "srl_batch",
    "Topology",
    "tls_credentials",
    "FilterResult",
    "ForkSuggestions",
    "WatchSession",
    "AsyncWatchSession",
    "WatchSummary",
]


def __getattr__(name: str):
    if name not in _NEEDING_GRPC:
        raise AttributeError(f"module 'treecredit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"treecredit.{_NEEDING_GRPC[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDING_GRPC})
