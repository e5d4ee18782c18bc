"""Smoke tests on the two real packaged base models: they load offline, train a few steps and save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.models import list_base_models, resolve_base_model
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICK_PREP = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False}})


@pytest.fixture(autouse=True)
def shared_model_cache(tmp_path_factory, monkeypatch):
    """SmolLM2 is converted from GGUF once per test session, not once per workspace."""
    monkeypatch.setenv("TUNELAB_MODEL_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


def test_both_packaged_models_are_installed(cli):
    listed = json.loads(cli("models", "base", "--json").stdout)["base_models"]
    assert {m["name"]: m["installed"] for m in listed} == {"minilm-l6": True, "smollm2-135m": True}
    assert {m["name"] for m in list_base_models()} == {"minilm-l6", "smollm2-135m"}


def test_minilm_classifier_trains_a_few_steps(store, tmp_path):
    rows = (EXAMPLES / "sms_spam" / "SMSSpamCollection").read_text().splitlines()[1:301]
    path = tmp_path / "sms.tsv"
    path.write_text("label\ttext\n" + "\n".join(rows) + "\n")
    raw = import_data(store, [str(path)], name="sms").version
    dataset = prepare(store, raw.id, QUICK_PREP).id
    result = train(store, TrainConfig(dataset=dataset, base_model="minilm-l6", max_steps=3, eval_every=3))
    assert result["state"] == "succeeded" and result["best_val_accuracy"] is not None
    assert store.get_model(result["model"])["labels"] == {"ham": 0, "spam": 1}


def test_smollm2_lora_sft_trains_a_few_steps(store):
    raw = import_data(store, [str(EXAMPLES / "customer_support" / "customer_support.csv")], name="support",
                      mapping={"response": "output"}).version
    dataset = prepare(store, raw.id, QUICK_PREP).id
    base = resolve_base_model("smollm2-135m", store.workspace)
    assert (Path(base.path) / "config.json").exists() and base.revision.startswith("sha256:")
    result = train(store, TrainConfig(dataset=dataset, base_model="smollm2-135m", max_steps=2, max_tokens=256,
                                      max_seq_length=256, eval_every=2, eval_examples=8))
    assert result["state"] == "succeeded" and result["best_val_loss"] < 10
    assert (Path(result["output"]) / "adapter_model.safetensors").exists()
