"""treecredit: step-level credit for LLM RL from rollout trees. The client SDK (grpcio, protobuf, numpy only).

    forest = treecredit.Forest()
    root = forest.add(None, prompt_ids, group="q1")
    ...
    with treecredit.CreditClient("127.0.0.1:50051") as client:
        result = client.score(forest, estimator="tree_grpo")
"""

from treecredit.channel import RETRY, RETRY_POLICY, ROUND_ROBIN, service_config, tls_credentials
from treecredit.client import AsyncCreditClient, CreditClient
from treecredit.confidence import FilterResult, ForkSuggestions
from treecredit.errors import (Cancelled, DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument,
                               PermissionDenied, RequestError, ResourceExhausted, ServiceError, Unauthenticated,
                               Unavailable, Unimplemented)
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
