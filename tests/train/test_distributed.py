"""`tunelab train --nproc 2` (DDP over gloo on CPU) takes the same steps as one process with the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toydata import intent_rows
from trainruns import loss_curve
from tunelab.train.launch import command, without_nproc


@pytest.fixture
def intents(prepared) -> str:
    version = prepared(intent_rows(51, words=(3, 9)), "intents")
    # 41 train rows: an epoch is 5 global micro-batches of 8 and one of a single example, of which the second
    # process gets nothing (it must still take part in the step, with a stand-in of weight 0)
    assert version.splits["train"] == 41
    return version.id


def _run(cli, config: Path, *args: str) -> dict:
    done = cli("train", str(config), *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1, done.stdout  # one JSON object, from rank 0 only
    result = json.loads(done.stdout)
    assert result["state"] == "succeeded"
    return result


def test_the_launcher_drops_only_nproc():
    argv = ["train", "t.yaml", "--nproc", "2", "--set", "epochs=1", "--nproc=3", "--json"]
    assert without_nproc(argv) == ["train", "t.yaml", "--set", "epochs=1", "--json"]
    assert command(2, argv)[-7:] == ["-m", "tunelab.cli", "train", "t.yaml", "--set", "epochs=1", "--json"]


def test_two_processes_match_one_with_the_same_global_batch(store, intents, tiny_encoder, cli, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"dataset": intents, "base_model": str(tiny_encoder), "task": "classification",
                                  "method": "full", "dropout": 0.0, "seed": 3, "learning_rate": 1e-3,
                                  "max_steps": 6, "eval_every": 3, "batch_size": 4, "threads": 1}))
    two = _run(cli, config, "--nproc", "2")
    one = _run(cli, config, "--set", "batch_size=8")
    runs = {r["id"]: r for r in store.list_runs()}
    assert runs[two["run"]]["config_resolved"]["batch_size"] == 4
    dirs = [Path(runs[r["run"]]["output_dir"]) for r in (two, one)]
    losses = [loss_curve(d) for d in dirs]
    assert len(losses[0]) == len(losses[1]) == 6
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    assert two["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-4)
    weights = [load_file(str(d / "model" / "model.safetensors")) for d in dirs]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[1]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=1e-5)
    # the DDP run saved the plain model: no "module." prefix, and transformers loads it
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(dirs[0] / "model").config.num_labels == 2
