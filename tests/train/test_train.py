"""Training end to end on tiny local models: learning, early stopping, config errors, merge, crash safety."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toydata import intent_rows
from trainruns import loss_curve, start_training, wait_for_checkpoint
from tunelab.config import load_config
from tunelab.errors import InputError, TunelabError
from tunelab.train.checkpoint import LoopState
from tunelab.train.config import TrainConfig, resolve
from tunelab.train.loop import _improves
from tunelab.train.recipe import train


@pytest.fixture
def intents(prepared) -> str:
    return prepared(intent_rows(160, words=(6, 6)), "intents").id


def _cfg(**values) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 0, "threads": 1, **values})


def test_classifier_learns_a_toy_task(store, intents, tiny_encoder):
    result = train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), method="full", learning_rate=1e-3,
                               epochs=6, batch_size=8))
    assert result["state"] == "succeeded" and result["best_val_accuracy"] >= 0.9
    model = store.get_model(result["model"])
    assert model["labels"] == {"refund": 0, "track": 1} and model["kind"] == "full"
    config = json.loads((Path(model["path"]) / "config.json").read_text())
    assert config["id2label"] == {"0": "refund", "1": "track"}


def test_sft_learns_a_toy_task(store, greetings, tiny_causal_lm):
    result = train(store, _cfg(dataset=greetings, base_model=str(tiny_causal_lm), method="full", learning_rate=3e-3,
                               epochs=3, max_tokens=128))
    losses = loss_curve(Path(store.get_run(result["run"])["output_dir"]))
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
    assert (Path(result["output"]) / "model.safetensors").exists()


def test_lora_sft_trains_and_saves_only_the_adapter(store, greetings, tiny_causal_lm):
    result = train(store, _cfg(dataset=greetings, base_model=str(tiny_causal_lm), learning_rate=1e-2, epochs=3,
                               max_tokens=128, lora={"r": 8, "alpha": 16}))
    losses = loss_curve(Path(store.get_run(result["run"])["output_dir"]))
    assert sum(losses[-3:]) / 3 < 0.95 * sum(losses[:3]) / 3
    folder = Path(result["output"])
    assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
    assert not (folder / "model.safetensors").exists()


def test_early_stopping_keeps_the_best_checkpoint(store, intents, tiny_encoder):
    result = train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), method="full", learning_rate=0.5,
                               epochs=20, eval_every=2, early_stopping={"patience": 2}))
    assert result["early_stopped"] and result["step"] < result["total_steps"]
    assert result["best_step"] <= result["step"] - 4


def test_classifiers_pick_their_best_checkpoint_by_macro_f1_and_sft_by_loss():
    assert resolve(_cfg(dataset="d", base_model="m"), "classification").early_stopping.metric == "val_f1"
    assert resolve(_cfg(dataset="d", base_model="m"), "instruction").early_stopping.metric == "val_loss"
    with pytest.raises(InputError, match="val_f1 needs labels"):
        resolve(_cfg(dataset="d", base_model="m", early_stopping={"metric": "val_f1"}), "chat")


def test_a_better_f1_wins_and_an_equal_f1_goes_to_the_lower_loss():
    state = LoopState(best_val_loss=0.30, best_val_f1=0.90)
    assert _improves(state, {"val_loss": 0.40, "val_f1": 0.92}, "val_f1", 0.0)
    assert not _improves(state, {"val_loss": 0.20, "val_f1": 0.89}, "val_f1", 0.0)
    assert _improves(state, {"val_loss": 0.25, "val_f1": 0.90}, "val_f1", 0.0)
    assert not _improves(state, {"val_loss": 0.29, "val_f1": 0.92}, "val_loss", 0.02)
    assert _improves(LoopState(best_val_loss=0.30), {"val_loss": 0.40, "val_f1": 0.5}, "val_f1", 0.0)  # old state


@pytest.mark.parametrize(("yaml", "message"), [
    ("dataset: x\nbase_model: y\nlearning_rte: 0.1\n", "learning_rte: unknown key"),
    ("dataset: x\nbase_model: y\nepochs: many\n", "epochs: Input should be a valid number"),
    ("base_model: y\n", "dataset: Field required"),
    ("dataset: x\nbase_model: y\nmethod: dora\n", "method: Input should be 'lora', 'qlora' or 'full'"),
])
def test_config_errors_name_the_file_and_key(tmp_path, yaml, message):
    path = tmp_path / "train.yaml"
    path.write_text(yaml)
    with pytest.raises(InputError, match=message) as raised:
        load_config(TrainConfig, path)
    assert str(path) in str(raised.value)


def test_a_missing_dataset_or_base_model_is_a_clear_error(store, intents, cli, tmp_path):
    with pytest.raises(TunelabError, match="no dataset 'nope'"):
        train(store, _cfg(dataset="nope", base_model="minilm-l6"))
    with pytest.raises(TunelabError, match="unknown base model 'gpt-7'"):
        train(store, _cfg(dataset=intents, base_model="gpt-7"))
    with pytest.raises(TunelabError, match="qlora needs a CUDA GPU"):
        train(store, _cfg(dataset=intents, base_model="minilm-l6", method="qlora"))
    config = tmp_path / "t.yaml"
    config.write_text(f"dataset: {intents}\nbase_model: minilm-l6\ntask: sft\n")
    done = cli("train", str(config))
    assert done.returncode == 2 and "task sft does not fit the classification dataset" in done.stderr
    assert "Traceback" not in done.stderr


def test_merge_gives_a_plain_transformers_folder(store, greetings, tiny_causal_lm, cli):
    from transformers import AutoModelForCausalLM

    result = train(store, _cfg(dataset=greetings, base_model=str(tiny_causal_lm), learning_rate=5e-3, max_steps=4))
    done = cli("models", "merge", result["model"], "--json")
    assert done.returncode == 0, done.stderr
    merged = AutoModelForCausalLM.from_pretrained(json.loads(done.stdout)["out"])
    assert merged.config.model_type == "llama"


def test_a_killed_run_resumes_to_the_same_result(store, greetings, tiny_causal_lm, cli, tmp_path):
    settings = {"dataset": greetings, "base_model": str(tiny_causal_lm), "learning_rate": 3e-3, "max_steps": 300,
                "max_tokens": 64, "checkpoint_every": 4, "eval_every": 50, "seed": 0, "threads": 1,
                "lora": {"dropout": 0.1}}
    reference = train(store, TrainConfig.model_validate(settings))
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps(settings))
    process = start_training(store, config)
    run = wait_for_checkpoint(store, 12, process)
    process.send_signal(signal.SIGKILL)  # wherever it is now: past step 12, before the end
    process.wait()
    listed = json.loads(cli("runs", "list", "--json").stdout)["runs"]
    assert next(r for r in listed if r["run"] == run["id"])["state"] == "failed"
    resumed = cli("train", "--resume", run["id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "succeeded"
    ref_dir, run_dir = (Path(store.get_run(r)["output_dir"]) for r in (reference["run"], run["id"]))
    ref_losses, losses = loss_curve(ref_dir), loss_curve(run_dir)
    assert len(losses) == len(ref_losses) == 300
    assert losses == pytest.approx(ref_losses, rel=1e-4)
    assert loss_curve(run_dir, "eval") == pytest.approx(loss_curve(ref_dir, "eval"), rel=1e-4)
    final, expected = (load_file(str(d / "model" / "adapter_model.safetensors")) for d in (run_dir, ref_dir))
    assert final.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-4, atol=1e-5)


def test_sigterm_checkpoints_and_a_corrupted_checkpoint_is_refused(store, greetings, tiny_causal_lm, cli, tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"dataset": greetings, "base_model": str(tiny_causal_lm), "max_steps": 400,
                                  "batch_size": 2, "checkpoint_every": 2, "threads": 1}))
    process = start_training(store, config)
    run = wait_for_checkpoint(store, 2, process)
    assert cli("runs", "cancel", run["id"]).returncode == 0
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3 and json.loads(out)["state"] == "cancelled", err
    latest = sorted((Path(run["output_dir"]) / "checkpoints").glob("checkpoint-*"))[-1]
    weights = latest / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16] + b"\0" * 16)
    refused = cli("train", "--resume", run["id"])
    assert refused.returncode == 2 and "is corrupted" in refused.stderr and "Traceback" not in refused.stderr


def test_tensorboard_logging_writes_event_files(store, intents, tiny_encoder):
    result = train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), max_steps=3,
                               logging={"tensorboard": True}))
    folder = Path(store.get_run(result["run"])["output_dir"]) / "tensorboard"
    assert any(p.name.startswith("events.out.tfevents") for p in folder.iterdir())


def test_mlflow_logging_records_the_config_and_metrics_by_step(store, intents, tiny_encoder, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), max_steps=4, eval_every=2,
                               logging={"mlflow": True}))
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tunelab")
    [run] = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{result['run']}'")
    assert run.info.status == "FINISHED"
    points = [json.loads(line) for line in
              (Path(store.get_run(result["run"])["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    for kind, name in (("train", "loss"), ("eval", "val_loss")):
        history = sorted(client.get_metric_history(run.info.run_id, f"{kind}/{name}"), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(p["step"], pytest.approx(p[name]))
                                                        for p in points if p["kind"] == kind]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval/val_loss")] == [2, 4]
    params = run.data.params
    assert params["max_steps"] == "4" and params["threads"] == "1" and params["logging.mlflow"] == "True"
    assert params["task"] == "classification" and params["learning_rate"] == "0.0005"  # resolved, not as given
    assert params["lora.r"] == "16" and params["lora.target_modules"] == "all-linear"

    def crash(step, metrics):
        raise RuntimeError("the tuner broke")

    with pytest.raises(RuntimeError):
        train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), max_steps=4, eval_every=2,
                          logging={"mlflow": True}), on_eval=crash)
    crashed = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{store.list_runs()[-1]['id']}'")
    assert crashed[0].info.status == "FAILED"


def test_mlflow_logging_without_a_tracking_uri_fails_the_run(store, intents, tiny_encoder, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(InputError, match="needs MLFLOW_TRACKING_URI"):
        train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), max_steps=1, logging={"mlflow": True}))
    assert store.list_runs()[-1]["state"] == "failed"
