"""Score with the structures besides trees: what ToolPO, SRL and the reflection reward change in a Score call.

`prepare` runs before the ordinary scoring of `credit.score`: it adds R3 to the leaf rewards and gives the
leaf advantages of `toolpo` / `srl`; everything else (node advantages, preferences, depth profile) follows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from treecredit_server.compute import reflection, srl, toolpo
from treecredit_server.compute.credit import Estimator
from treecredit_server.compute.forest import ForestArrays


@dataclass(frozen=True)
class StructureInputs:
    """Decoded, validated request parts; each is None when the request did not carry it."""

    action_reward: np.ndarray | None = None  # toolpo: float64 [N]
    step_similarity: dict | None = None      # srl: keyword arguments of `srl.step_rewards`, and `min_std`
    reflection: dict | None = None           # keyword arguments of `reflection.reflect`


@dataclass(frozen=True)
class Prepared:
    forest: ForestArrays                        # the forest to score (R3 added to leaf rewards if asked)
    leaf_advantage: np.ndarray | None = None    # toolpo: A_succ; srl: step advantages; float64 [N]
    action_advantage: np.ndarray | None = None  # toolpo: A_act, float64 [N]
    step_credit: srl.StepCredit | None = None
    reflection: reflection.Reflection | None = None


def prepare(forest: ForestArrays, estimator: Estimator, inputs: StructureInputs, *, normalize_std: bool) -> Prepared:
    reflected = None
    if inputs.reflection is not None:
        reflected = reflection.reflect(**inputs.reflection)
        forest = reflection.with_reflection_reward(forest, reflected)
    if estimator is Estimator.TOOLPO:
        success, action = toolpo.advantages(forest, inputs.action_reward)
        return Prepared(forest, success, action, reflection=reflected)
    if estimator is Estimator.SRL:
        options = dict(inputs.step_similarity)
        min_std = options.pop("min_std")
        step = srl.step_credit(forest, srl.step_rewards(forest, **options), min_std=min_std,
                               normalize_std=normalize_std)
        return Prepared(replace(forest, reward=step.step_reward), step.leaf_advantage, step_credit=step)
    return Prepared(forest, reflection=reflected)
