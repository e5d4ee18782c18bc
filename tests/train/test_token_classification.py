"""Token classification end to end on the tiny encoder: BIO tags through word pieces, learning, LoRA with its head,
merge, and a killed run that resumes to the same result."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForTokenClassification, AutoTokenizer

from toydata import entity_rows, intent_rows
from trainruns import kill_and_resume, loss_curve
from tunelab.data import bio
from tunelab.errors import InputError, TunelabError
from tunelab.export.service import export_model
from tunelab.train.config import TrainConfig, resolve
from tunelab.train.data import IGNORE_INDEX
from tunelab.train.recipe import train
from tunelab.train.tagging import encode_token_classification, label_map, validation_metrics


@pytest.fixture
def entities(prepared) -> str:
    return prepared(entity_rows(160), "entities").id


def _cfg(**values) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 0, "threads": 1, **values})


def test_only_the_first_piece_of_each_word_is_tagged(tiny_encoder):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    text = "ship packages tomorrow, please"
    table = pa.table({"text": [text], "spans": [[{"start": 5, "end": 13, "label": "item"},
                                                 {"start": 14, "end": 22, "label": "day"}]]})
    tags = label_map([table])
    assert list(tags) == ["O", "B-day", "I-day", "B-item", "I-item"]
    encoded = encode_token_classification(table, tokenizer, tags, 64)
    pieces = tokenizer.convert_ids_to_tokens(encoded.input_ids[0])
    names = {i: tag for tag, i in tags.items()}
    got = [(piece, names.get(label, "-")) for piece, label in zip(pieces, encoded.labels[0], strict=True)]
    assert got[0] == ("[CLS]", "-") and got[-1] == ("[SEP]", "-")
    assert ("package", "B-item") in got and ("##s", "-") in got  # "packages": two pieces, one tag
    assert [tag for _, tag in got if tag != "-"] == ["O", "B-item", "B-day", "O", "O"]  # ship ... tomorrow , please
    assert encoded.labels[0].count(IGNORE_INDEX) == len(pieces) - 5


def test_strict_matching_counts_only_exact_type_and_boundaries():
    gold = [(0, 2, "item"), (4, 5, "day")]
    assert bio.strict_counts(gold, [(0, 2, "item"), (4, 5, "day")]) == {"item": [1, 0, 0], "day": [1, 0, 0]}
    assert bio.strict_counts(gold, [(0, 1, "item"), (4, 5, "item")]) == {"item": [0, 2, 1], "day": [0, 0, 1]}
    assert bio.entities(["I-day", "I-day", "O", "B-item", "B-item", "I-day"]) == [(0, 2, "day"), (3, 4, "item"),
                                                                                    (4, 5, "item"), (5, 6, "day")]
    ids = {0: "O", 1: "B-x", 2: "I-x"}
    assert validation_metrics([[IGNORE_INDEX, 1, 2, 0]], [[0, 1, 0, 0]], ids) == {"val_accuracy": 2 / 3,
                                                                                  "val_f1": 0.0}


def test_token_classifier_learns_a_toy_task(store, entities, tiny_encoder):
    result = train(store, _cfg(dataset=entities, base_model=str(tiny_encoder), method="full", learning_rate=3e-3,
                               epochs=8, batch_size=8))
    run = store.get_run(result["run"])
    assert run["task"] == "token_classification" and result["state"] == "succeeded"
    assert result["best_val_f1"] >= 0.8, result
    model = store.get_model(result["model"])
    assert model["labels"] == {"O": 0, "B-day": 1, "I-day": 2, "B-item": 3, "I-item": 4}
    config = json.loads((Path(model["path"]) / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["id2label"]["3"] == "B-item"


def test_lora_keeps_the_head_trainable_saves_it_and_merges(store, entities, tiny_encoder, cli, tmp_path):
    result = train(store, _cfg(dataset=entities, base_model=str(tiny_encoder), max_steps=6, eval_every=3))
    assert resolve(_cfg(dataset=entities, base_model="m"), "token_classification").early_stopping.metric == "val_f1"
    folder = Path(result["output"])
    saved = load_file(str(folder / "adapter_model.safetensors"))
    assert any("classifier" in name for name in saved) and any("lora_A" in name for name in saved)
    assert "classifier" in json.loads((folder / "adapter_config.json").read_text())["modules_to_save"]
    done = cli("models", "merge", result["model"], "--json")
    assert done.returncode == 0, done.stderr
    merged = AutoModelForTokenClassification.from_pretrained(json.loads(done.stdout)["out"])
    assert merged.config.num_labels == 5
    with pytest.raises(TunelabError, match="BertModel with a classification head"):
        export_model(store, result["model"], "gguf", tmp_path / "gguf")


def test_a_token_task_on_other_data_is_a_clear_error(store, prepared, tiny_encoder):
    intents = prepared(intent_rows(40), "intents").id
    with pytest.raises(InputError, match="task token_classification does not fit the classification dataset"):
        train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), task="token_classification"))


def test_a_killed_token_run_resumes_to_the_same_result(store, entities, tiny_encoder, cli, tmp_path):
    settings = {"dataset": entities, "base_model": str(tiny_encoder), "max_steps": 60, "batch_size": 4,
                "checkpoint_every": 4, "eval_every": 20, "seed": 0, "threads": 1, "lora": {"dropout": 0.1}}
    reference = train(store, TrainConfig.model_validate(settings))
    run, resumed = kill_and_resume(store, cli, tmp_path, settings, 8)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["best_val_f1"] == pytest.approx(reference["best_val_f1"])
    ref_dir, run_dir = (Path(store.get_run(r)["output_dir"]) for r in (reference["run"], run["id"]))
    assert loss_curve(run_dir) == pytest.approx(loss_curve(ref_dir), rel=1e-4) and len(loss_curve(run_dir)) == 60
    final, expected = (load_file(str(d / "model" / "adapter_model.safetensors")) for d in (run_dir, ref_dir))
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-4, atol=1e-5)
