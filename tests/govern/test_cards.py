"""Model cards: a Hugging Face README.md that hub tooling parses, with the lineage, config, results with intervals,
flags and approvals of the model, refreshed as it is evaluated and approved, and carried into exports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from toydata import intent_rows
from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.evaluate import EvalOptions, evaluate
from tunelab.export import export_model
from tunelab.govern import cards
from tunelab.store import approvals
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train

EMAIL = "ana.lopez@example.org"


@pytest.fixture
def evaluated(store, tmp_path, tiny_encoder):
    """A tiny classifier trained on a de-identified version of a raw import, evaluated once with a gate."""
    rows = intent_rows(80)
    rows[3]["text"] += f" write to {EMAIL}"
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = import_data(store, [str(source)], name="tickets").version
    prepared = prepare(store, raw.id, PrepConfig.model_validate({"dedup": {"near": False}, "pii": {"ner": False},
                                                                 "leakage": {"near": False}}))
    result = train(store, TrainConfig.model_validate({"dataset": prepared.id, "base_model": str(tiny_encoder),
                                                      "max_steps": 3, "eval_every": 3, "seed": 0, "threads": 1}))
    evaluation = evaluate(store, result["model"], prepared.id, EvalOptions(
        forgetting=False, explain=0, resamples=50, min_improvement={"accuracy": -1.0}))
    return raw, prepared, result["model"], evaluation


def test_the_card_tells_lineage_config_results_and_approvals(store, evaluated, cli):
    raw, prepared, model_id, evaluation = evaluated
    path = Path(store.get_model(model_id)["path"]) / "README.md"
    card = ModelCard.load(path)  # written by the evaluation, parsed by huggingface_hub
    [result, *_] = card.data.eval_results
    assert card.data.model_name and card.data.pipeline_tag == "text-classification"
    assert result.dataset_type == prepared.id and "95% CI" in result.metric_name
    assert card.data.library_name == "peft" and "tunelab" in card.data.tags
    text = card.content
    for needed in ("## Data lineage", raw.id, prepared.id, "`pii`", "EMAIL_ADDRESS", "max_steps: 3",
                   "## Evaluation", evaluation["evaluation"], "Release gate: **passed**", "## Forgetting and bias",
                   "## Intended use and limits", "refund, track", "## Approvals"):
        assert needed in text, needed
    assert EMAIL not in text and intent_rows(80)[0]["text"] not in text, "a card never quotes a row"

    request = approvals.add_request(store, model_id, evaluation["evaluation"], "erin", "u-erin")
    approvals.approve(store, request, "rita")
    printed = cli("models", "card", model_id)
    assert printed.returncode == 0 and "| erin |" in printed.stdout and "rita" in printed.stdout


def test_exports_carry_the_card(store, evaluated, tmp_path, tiny_causal_lm):
    model_id = evaluated[2]
    merged = Path(export_model(store, model_id, "merged")["out"])
    assert ModelCard.load(merged / "README.md").data.model_name == store.get_model(model_id)["name"]
    folder = tmp_path / "full"
    shutil.copytree(tiny_causal_lm, folder)
    store.add_model("m-full", "hand-made", "full", str(folder), None, task="sft", base_model=str(folder))
    gguf = export_model(store, "m-full", "gguf", tmp_path / "gguf")
    assert "README.md" in gguf["files"]
    text = (tmp_path / "gguf" / "README.md").read_text()
    assert "No training run is recorded" in text and "Not evaluated yet" in text
    assert cards.render(store, "m-full") == text


def test_a_card_reads_what_an_evaluation_left_and_never_fails_on_gaps(store, tmp_path):
    """A model registered by hand, a dataset since deleted, an eval.json with its gate only, a report deleted."""
    store.add_model("m-stub", "stub", "adapter", str(tmp_path / "none"), "ds-deleted", task="classification")
    for evaluation, content in (("ev-gate", {"gate": {"passed": True, "checks": []}}), ("ev-gone", None)):
        report = tmp_path / evaluation / "report.html"
        report.parent.mkdir()
        if content is not None:
            (report.parent / "eval.json").write_text(json.dumps(content))
        store.add_evaluation(evaluation, "ds-deleted", "test", str(report),
                             [{"model_key": "m-stub", "model_id": "m-stub", "role": "tuned", "metrics": {}}])
    text = cards.render(store, "m-stub")
    assert "`ds-deleted`: deleted from this workspace" in text and "Release gate: **passed**\n" in text + "\n"
    assert "Its report was deleted with the data it scored." in text and cards.refresh(store, "m-stub") is None
