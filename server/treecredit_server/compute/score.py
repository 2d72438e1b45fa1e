"""Score: everything one Score call computes, from validated inputs to one result (ALGORITHMS.md 1-3, 5, 7-9).

The reflection reward R3 is added to the leaf rewards first; `toolpo` and `srl` give the leaf advantages that
`credit.score` then uses as given (the other estimators compute their own); the trace confidence comes last, when
the forest carries token confidences. Knows nothing of protobuf or gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from treecredit_server.compute import credit, reflection, srl, toolpo
from treecredit_server.compute.credit import Credit, Estimator
from treecredit_server.compute.forest import ForestArrays
from treecredit_server.compute.trace_confidence import TraceConfidence, has_token_confidence, trajectory_confidence


@dataclass(frozen=True)
class ScoreInputs:
    """A decoded, validated Score request; the method inputs are None when the request did not carry them."""

    forest: ForestArrays
    estimator: Estimator
    normalize_std: bool = True
    sibling_std: bool = False
    min_margin: float = 0.0
    window: int = 2048                           # trace confidence
    tail: int = 2048
    action_reward: np.ndarray | None = None      # toolpo: float64 [N], finite at the leaves
    step_similarity: srl.StepInputs | None = None  # srl
    reflection: dict | None = None               # keyword arguments of `reflection.reflect`, one query per group


@dataclass(frozen=True)
class Scored:
    estimator: Estimator
    credit: Credit
    action_advantage: np.ndarray | None = None   # toolpo: A_act, float64 [N]
    step_credit: srl.StepCredit | None = None    # srl
    reflection: reflection.Reflection | None = None
    trace: TraceConfidence | None = None         # when the forest carries token confidences


def score(inputs: ScoreInputs) -> Scored:
    forest, estimator = inputs.forest, inputs.estimator
    reflected = action_advantage = step = leaf_advantage = None
    if inputs.reflection is not None:
        reflected = reflection.reflect(**inputs.reflection)
        forest = reflection.with_reflection_reward(forest, reflected)
    if estimator is Estimator.TOOLPO:
        leaf_advantage, action_advantage = toolpo.advantages(forest, inputs.action_reward)
    elif estimator is Estimator.SRL:
        step = srl.step_credit(forest, srl.step_rewards(forest, inputs.step_similarity),
                               min_std=inputs.step_similarity.min_std, normalize_std=inputs.normalize_std)
        forest, leaf_advantage = replace(forest, reward=step.step_reward), step.leaf_advantage
    result = credit.score(forest, estimator, normalize_std=inputs.normalize_std, sibling_std=inputs.sibling_std,
                          min_margin=inputs.min_margin, leaf_advantage=leaf_advantage)
    trace = (trajectory_confidence(inputs.forest, window=inputs.window, tail=inputs.tail)
             if has_token_confidence(inputs.forest) else None)
    return Scored(estimator, result, action_advantage, step, reflected, trace)
