"""Run by a venv with verl 0.9.1 and the SDK: `python verl_advantage.py TARGET BATCH_JSON`.

Scores the batch through verl's own advantage step, with the treecredit estimator registered by verl's
`register_adv_est`, on a real `DataProto`, and prints one JSON line: what the v1 trainer's advantage
function does without tree fields and inside `trees(...)`, what the legacy one does, and
`treecredit.adapters.verl.compute_advantage` on the same `DataProto`. Also checks that the names the
module docstring's v1 trainer hook uses exist in this verl.
"""

from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import torch
import transfer_queue
from verl import DataProto
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import ray_trainer
from verl.trainer.ppo.core_algos import register_adv_est
from verl.trainer.ppo.v1 import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

import treecredit
from treecredit.adapters import verl as treecredit_verl


def objects(rows: list) -> np.ndarray:
    """A 1-D object array of per-row lists, as verl's non_tensor_batch holds them."""
    array = np.empty(len(rows), dtype=object)
    array[:] = rows
    return array


def main(target: str, batch: dict) -> dict:
    client = treecredit.CreditClient(target, timeout=60)
    register_adv_est("treecredit")(treecredit_verl.advantage_estimator(client, batch["estimator"]))
    mask = torch.tensor(batch["mask"], dtype=torch.long)
    rewards = torch.zeros(mask.shape)
    last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
    rewards[torch.arange(len(mask)), last] = torch.tensor(batch["rewards"])  # an outcome on the last token
    tree = {"tree_path": objects(batch["tree_path"]), "segment_lengths": objects(batch["segment_lengths"])}
    uid = np.array(batch["uid"], dtype=object)
    keys = [f"{u}_{row}_0" for row, u in enumerate(batch["uid"])]  # the v1 trainer's {uid}_{session}_{index}

    def data(**non_tensors) -> DataProto:
        return DataProto.from_dict(tensors={"token_level_rewards": rewards, "response_mask": mask},
                                   non_tensors={"uid": uid, **non_tensors})

    def v1(proto: DataProto) -> DataProto:  # what PPOTrainer._compute_advantage calls
        return compute_advantage_for_multi_trajectories(proto, batch_keys=keys, adv_estimator="treecredit",
                                                        config=AlgoConfig(adv_estimator="treecredit"))

    out = {"versions": {"verl": sys.modules["verl"].__version__, "torch": torch.__version__}}
    try:
        v1(data())
        out["v1_without_trees"] = "scored"
    except ValueError as error:
        out["v1_without_trees"] = str(error)
    with treecredit_verl.trees(**treecredit_verl.tree_kwargs(tree)):
        out["v1_with_trees"] = v1(data()).batch["advantages"].tolist()
        legacy = ray_trainer.compute_advantage(data(), adv_estimator="treecredit", config=AlgoConfig())
        out["legacy_with_trees"] = legacy.batch["advantages"].tolist()
    proto = treecredit_verl.compute_advantage(data(**tree), client, batch["estimator"])
    out["dataproto"] = proto.batch["advantages"].tolist()
    # The v1 trainer hook of the module docstring: these names, with these parameters.
    out["hook_names"] = {
        "register_trainer": callable(register_trainer),
        "_compute_advantage": list(inspect.signature(PPOTrainerSync._compute_advantage).parameters),
        "kv_batch_get": list(inspect.signature(transfer_queue.kv_batch_get).parameters),
    }
    client.close()
    return out


if __name__ == "__main__":
    print("RESULTS " + json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
