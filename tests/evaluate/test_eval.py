"""`tunelab eval` end to end on tiny local models: metrics match the predictions, flags fire, the gate exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunelab.data.versions import read_split
from tunelab.evaluate import EvalOptions, evaluate
from tunelab.evaluate.contenders import Decoding
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train


def test_classifier_against_its_probe_base_with_bias_flag(store, classifier, regional_intents):
    result = evaluate(store, classifier, regional_intents, EvalOptions(group_column="region", resamples=200))
    report = json.loads(Path(result["json"]).read_text())
    tuned = report["metrics"][classifier]
    base_key = next(c["key"] for c in report["contenders"] if c["role"] == "base")
    assert base_key == f"base:{store.get_run(store.get_model(classifier)['run_id'])['base_model']}"
    assert "probe" in next(c["note"] for c in report["contenders"] if c["role"] == "base")

    # the stored metrics are those of the predictions the report lists, recomputed by scikit-learn
    truth = [str(x) for x in read_split(store.get_dataset(regional_intents), "test").column("label").to_pylist()]
    predicted = report["predictions"][classifier]
    assert tuned["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert tuned["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert tuned["accuracy_ci"][0] <= tuned["accuracy"] <= tuned["accuracy_ci"][1]
    assert report["comparisons"][base_key]["test"]["test"].startswith("exact McNemar")

    # the south rows contradict the majority, so the tuned model fails them: the bias flag names both groups
    bias = report["bias"][classifier]
    assert bias["flagged"] and bias["groups"]["north"]["accuracy"] > bias["groups"]["south"]["accuracy"] + 0.5
    assert any("north" in r and "south" in r for r in bias["reasons"])
    assert any("south" in f for f in result["flags"])
    assert report["explanations"]["items"] and "background" in report["explanations"]["html"]
    assert Path(result["report"]).read_text().count("data:image/png;base64,") >= 5
    assert store.evaluations(classifier)[0]["evaluation_id"] == result["evaluation"]


def test_gate_exit_codes_and_report_command(cli, classifier, regional_intents):
    ok = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "accuracy=-1", "--json",
             "--no-forgetting")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["gate"]["passed"] and set(out["models"]) >= {classifier}
    failed = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "accuracy=0.9", "--json",
                 "--no-forgetting")
    assert failed.returncode == 1 and not json.loads(failed.stdout)["gate"]["passed"]
    bad = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "bleu=0.1")
    assert bad.returncode == 2 and "bleu" in bad.stderr and "Traceback" not in bad.stderr
    where = cli("report", classifier, "--json")
    assert where.returncode == 0 and json.loads(where.stdout)["report"] == json.loads(failed.stdout)["report"]


def test_chat_model_against_zero_and_k_shot_base_and_forgetting_flag(store, greetings, tiny_causal_lm):
    cfg = TrainConfig.model_validate({"dataset": greetings, "base_model": str(tiny_causal_lm), "method": "full",
                                      "learning_rate": 3e-3, "epochs": 3, "max_tokens": 128, "seed": 0, "threads": 1})
    model = train(store, cfg)["model"]
    options = EvalOptions(decoding=Decoding(max_new_tokens=12, shots=2), resamples=200)
    result = evaluate(store, model, greetings, options)
    report = json.loads(Path(result["json"]).read_text())
    keys = [c["key"] for c in report["contenders"]]
    assert keys[0].startswith("base:") and keys[1].endswith("+2shot") and keys[2] == model
    tuned, base = report["metrics"][model], report["metrics"][keys[0]]
    assert tuned["token_f1"] > base["token_f1"] and tuned["perplexity"] < base["perplexity"]
    assert "perplexity" not in report["metrics"][keys[1]]  # no reference perplexity for a prompt with shots
    # trained only on one greeting, the model now finds Wikipedia text far less likely than the random base did
    assert report["forgetting"]["metric"] == "perplexity" and report["forgetting"]["flagged"]
    assert report["comparisons"][keys[0]]["test"]["test"] == "paired bootstrap"
    assert len(report["worst"]) == min(10, report["examples"])


def test_deleting_the_dataset_deletes_the_reports_that_quote_it(store, classifier, regional_intents):
    from tunelab.data import delete

    result = evaluate(store, classifier, regional_intents, EvalOptions(forgetting=False, explain=0, resamples=50))
    assert Path(result["report"]).exists()
    assert delete(store, regional_intents, force=True)["reports"] == 1
    assert not Path(result["report"]).parent.exists() and store.evaluations(classifier) == []
