"""Trainer adapters: a trainer's batch -> `Forest` -> advantages aligned with the batch's mask.

- `treecredit.adapters.verl`: verl `DataProto` fields and its pluggable advantage-estimator hook.
- `treecredit.adapters.generic`: per-sample rewards + masks + prompt groups, as OpenRLHF and TRL hold them.

Neither imports a trainer or torch; torch tensors are accepted and returned duck-typed.
"""

from treecredit.adapters import generic, verl
from treecredit.adapters.generic import BatchCredit, BatchForest, score_batch

__all__ = ["BatchCredit", "BatchForest", "generic", "score_batch", "verl"]
