"""Entity metrics: strict span matching as pure functions, then `tunelab eval` of a tiny token classifier against its
per-word probe base, with the numbers of eval.json recomputed from the predictions it lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from toydata import entity_rows
from tunelab.data import bio
from tunelab.data.versions import read_split
from tunelab.evaluate import EvalOptions, evaluate
from tunelab.evaluate.entities import counts, paired_bootstrap_f1, score_entities, summary
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train


def _e(start: int, end: int, label: str) -> dict:
    return {"start": start, "end": end, "label": label}


GOLD = [[_e(0, 8, "city"), _e(12, 18, "day")], [_e(3, 7, "item")], []]


def test_a_span_counts_only_with_its_type_and_both_boundaries():
    predicted = [[_e(0, 8, "city"), _e(12, 17, "day")],  # right; one character short
                 [_e(3, 7, "day")],  # right place, wrong type
                 [_e(0, 2, "item")]]  # nothing to find
    table = counts(predicted, GOLD, ["city", "day", "item"])
    assert table.sum(axis=0).tolist() == [[1, 0, 0], [0, 2, 1], [0, 1, 1]]
    result = summary(table.sum(axis=0), ["city", "day", "item"])
    assert result["precision_micro"] == pytest.approx(1 / 4) and result["recall_micro"] == pytest.approx(1 / 3)
    assert result["f1_micro"] == pytest.approx(2 / 7)  # 2tp / (2tp + fp + fn) = 2 / (2 + 3 + 2)
    assert result["f1_macro"] == pytest.approx((1 + 0 + 0) / 3)
    assert result["per_type"]["day"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 2}


def test_macro_averages_only_types_the_references_hold():
    table = counts([[_e(0, 8, "city"), _e(9, 10, "ghost")]], [[_e(0, 8, "city")]], ["city", "ghost"])
    result = summary(table.sum(axis=0), ["city", "ghost"])
    assert result["f1_macro"] == 1.0 and result["precision_micro"] == 0.5  # the ghost costs precision, not macro


def test_intervals_and_the_paired_test_resample_sentences():
    rng = np.random.default_rng(0)
    gold = [[_e(0, 4, "x")] for _ in range(60)]
    good = [g if rng.random() < 0.9 else [] for g in gold]
    bad = [g if rng.random() < 0.4 else [] for g in gold]
    better, worse = (score_entities(p, gold, ["x"], resamples=300) for p in (good, bad))
    low, high = better["metrics"]["f1_micro_ci"]
    assert low <= better["metrics"]["f1_micro"] <= high < 1.0
    test = paired_bootstrap_f1(worse["counts"], better["counts"], resamples=300)
    assert test["delta"] > 0.3 and test["p_value"] < 0.01 and test["ci"][0] > 0
    assert paired_bootstrap_f1(better["counts"], better["counts"], resamples=50)["p_value"] == 1.0


@pytest.fixture
def tagged(prepared) -> str:
    rows = entity_rows(200, seed=3)
    for i, row in enumerate(rows):
        row["channel"] = "chat" if i % 2 else "email"
    return prepared(rows, "tagged").id


def test_eval_scores_a_token_classifier_against_its_probe_base(store, tagged, tiny_encoder):
    trained = train(store, TrainConfig.model_validate({"dataset": tagged, "base_model": str(tiny_encoder),
                                                       "method": "full", "learning_rate": 3e-3, "epochs": 8,
                                                       "seed": 0, "threads": 1}))
    model = trained["model"]
    result = evaluate(store, model, tagged, EvalOptions(group_column="channel", resamples=200, forgetting=False))
    report = json.loads(Path(result["json"]).read_text())
    assert report["task"] == "token_classification" and report["labels"] == ["day", "item"]
    base = next(c for c in report["contenders"] if c["role"] == "base")
    assert base["key"].startswith("base:") and "per-word probe" in base["label"]
    tuned = report["metrics"][model]
    assert tuned["f1_micro"] >= 0.8 and set(tuned["per_type"]) == {"day", "item"}

    # eval.json's numbers are those of the predictions it lists
    gold = read_split(store.get_dataset(tagged), "test").column("spans").to_pylist()
    totals = np.zeros(3)
    for guess, truth in zip(report["predictions"][model], gold, strict=True):
        assert all(e["text"] and 0 < e["score"] <= 1 for e in guess)
        for values in bio.strict_counts([(e["start"], e["end"], e["label"]) for e in truth],
                                        [(e["start"], e["end"], e["label"]) for e in guess]).values():
            totals += values
    assert tuned["f1_micro"] == pytest.approx(bio.f1(*totals))
    assert tuned["f1_micro_ci"][0] <= tuned["f1_micro"] <= tuned["f1_micro_ci"][1]
    assert report["comparisons"][base["key"]]["test"]["metric"] == "f1_micro"
    assert set(report["bias"][model]["groups"]) == {"chat", "email"}
    assert report["samples"][0]["predicted"].keys() == {model, base["key"]}
    assert set(result["models"][model]) >= {"f1_micro", "f1_macro", "precision_micro", "recall_micro"}
    html = Path(result["report"]).read_text()
    assert "Per entity type" in html and "<mark>" in html and "Entities side by side" in html
