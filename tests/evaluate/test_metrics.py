"""Metric values against cases worked out by hand and against the libraries they promise to match."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sacrebleu
from pytest import approx
from scipy.stats import binomtest
from sklearn import metrics as skm

from tunelab.errors import InputError
from tunelab.evaluate.metrics import (
    MAX_CURVE_POINTS,
    bootstrap_ci,
    classification_metrics,
    generation_metrics,
    headline,
    mcnemar,
    paired_bootstrap,
    per_example_generation_scores,
)

LABELS = ["cat", "dog", "bird"]
# Worked by hand. Confusion (rows true, columns predicted, order cat dog bird): cat [2 1 0], dog [0 1 1], bird [0 0 1].
#   cat:  P 2/2 = 1,   R 2/3, F1 0.8,  support 3
#   dog:  P 1/2,       R 1/2, F1 0.5,  support 2
#   bird: P 1/2,       R 1/1, F1 2/3,  support 1
# accuracy 4/6; macro P (1 + .5 + .5)/3 = 2/3, R (2/3 + 1/2 + 1)/3 = 13/18, F1 (.8 + .5 + 2/3)/3 = 59/90;
# micro P = R = F1 = accuracy; weighted P (3*1 + 2*.5 + .5)/6 = .75, R 4/6, F1 (2.4 + 1 + 2/3)/6 = 61/90.
Y_TRUE = ["cat", "cat", "cat", "dog", "dog", "bird"]
Y_PRED = ["cat", "cat", "dog", "dog", "bird", "bird"]


def _plain(value) -> bool:
    """True when the value is built only from JSON types (numpy scalars pass json.dumps, so check exactly)."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in (str, int, float, bool)


def test_three_class_example_matches_hand_computation():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["accuracy"] == approx(4 / 6)
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == approx((2 / 3, 13 / 18, 59 / 90))
    assert (m["precision_micro"], m["recall_micro"], m["f1_micro"]) == approx((4 / 6, 4 / 6, 4 / 6))
    assert (m["precision_weighted"], m["recall_weighted"], m["f1_weighted"]) == approx((0.75, 4 / 6, 61 / 90))
    assert m["per_class"]["cat"] == approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["dog"] == approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["bird"] == approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["labels"] == LABELS
    assert "ece" not in m and "roc_auc" not in m
    assert _plain(m)


def test_never_predicted_class_scores_zero_without_warning():
    m = classification_metrics(["a", "b", "c"], ["a", "b", "b"], ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_matches_scikit_learn_on_random_data():
    rng = np.random.default_rng(7)
    labels = ["w", "x", "y", "z"]
    y_true = list(rng.choice(labels, 300, p=[0.4, 0.3, 0.2, 0.1]))
    y_pred = [t if rng.random() < 0.6 else str(rng.choice(labels)) for t in y_true]
    m = classification_metrics(y_true, y_pred, labels)
    assert m["accuracy"] == approx(skm.accuracy_score(y_true, y_pred))
    for average in ("macro", "micro", "weighted"):
        assert m[f"precision_{average}"] == approx(skm.precision_score(y_true, y_pred, average=average))
        assert m[f"recall_{average}"] == approx(skm.recall_score(y_true, y_pred, average=average))
        assert m[f"f1_{average}"] == approx(skm.f1_score(y_true, y_pred, average=average))
    assert m["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()


def test_binary_probabilities_give_auc_and_small_curves():
    rng = np.random.default_rng(3)
    y_true = list(rng.choice(["ham", "spam"], 1000, p=[0.7, 0.3]))
    score = np.clip(rng.normal(np.where(np.array(y_true) == "spam", 0.65, 0.4), 0.2), 0, 1)
    proba = np.column_stack([1 - score, score])
    y_pred = ["spam" if s > 0.5 else "ham" for s in score]
    m = classification_metrics(y_true, y_pred, ["ham", "spam"], proba=proba)
    is_spam = np.array(y_true) == "spam"
    assert m["positive"] == "spam"  # the rarer label
    assert m["roc_auc"] == approx(skm.roc_auc_score(is_spam, score))
    assert m["average_precision"] == approx(skm.average_precision_score(is_spam, score))
    fpr, tpr = m["roc_curve"]["fpr"], m["roc_curve"]["tpr"]
    assert len(fpr) == len(tpr) <= MAX_CURVE_POINTS
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert len(m["pr_curve"]["precision"]) == len(m["pr_curve"]["recall"]) <= MAX_CURVE_POINTS
    assert _plain(m)
    json.dumps(m, allow_nan=False)


def test_ece_and_reliability_bins_by_hand():
    # Top-class confidences .9 (right), .9 (wrong), .6 (right), .7 (right); bins are (lower, upper].
    # ECE = 1/4*|1-.6| + 1/4*|1-.7| + 2/4*|.5-.9| = .1 + .075 + .2 = .375
    proba = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6], [0.3, 0.7]])
    y_true = ["no", "no", "yes", "yes"]
    m = classification_metrics(y_true, ["no", "yes", "yes", "yes"], ["no", "yes"], proba=proba)
    assert m["ece"] == approx(0.375)
    assert m["reliability"]["bins"] == [  # exact: the edges are exact tenths
        {"lower": 0.5, "upper": 0.6, "confidence": 0.6, "accuracy": 1.0, "count": 1},
        {"lower": 0.6, "upper": 0.7, "confidence": 0.7, "accuracy": 1.0, "count": 1},
        {"lower": 0.8, "upper": 0.9, "confidence": 0.9, "accuracy": 0.5, "count": 2},
    ]
    # positive: a 2-2 tie picks labels[1]; AUC: of 4 (yes, no) pairs, .6 and .7 beat .1 but not .9 -> 0.5
    assert m["positive"] == "yes"
    assert m["roc_auc"] == approx(0.5)
    assert classification_metrics(y_true, y_true, ["no", "yes"], proba=proba, positive="no")["roc_auc"] == approx(0.5)


def test_auc_left_out_when_only_one_class_is_true():
    m = classification_metrics(["a", "a"], ["a", "b"], ["a", "b"], proba=np.array([[0.8, 0.2], [0.3, 0.7]]))
    assert m["positive"] == "b" and "roc_auc" not in m and "ece" in m


def test_bad_classification_inputs_are_named():
    with pytest.raises(InputError, match=r"y_true and y_pred have different lengths \(3 vs 2\)"):
        classification_metrics(["a", "b", "a"], ["a", "b"], ["a", "b"])
    with pytest.raises(InputError, match="y_pred has labels that are not in labels: 'c'"):
        classification_metrics(["a", "b"], ["a", "c"], ["a", "b"])
    with pytest.raises(InputError, match=r"proba has shape \(2, 3\), expected \(2, 2\)"):
        classification_metrics(["a", "b"], ["a", "b"], ["a", "b"], proba=np.ones((2, 3)) / 3)
    with pytest.raises(InputError, match="Positive label 'z'"):
        classification_metrics(["a", "b"], ["a", "b"], ["a", "b"], proba=np.eye(2), positive="z")


def test_exact_match_and_token_f1_by_hand():
    # token F1: "the cat sat on the mat" vs "the cat is on the mat": 5 shared tokens of 6 each -> P = R = F1 = 5/6
    preds = ["  Paris\n", "New  York", "Paris.", "The cat sat on the mat.", "", ""]
    refs = ["paris", "new york", "Paris", "the cat is on the mat", "", "something"]
    scores = per_example_generation_scores(preds, refs)
    assert scores["exact_match"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert scores["token_f1"].tolist() == approx([1.0, 1.0, 1.0, 5 / 6, 1.0, 0.0])


def test_rouge_l_on_a_known_pair():
    # stemmed: "the cat was sit on the mat" vs "the cat sat on the mat"; LCS 5 -> P 5/6, R 5/7, F 10/13
    scores = per_example_generation_scores(["the cat sat on the mat"], ["the cat was sitting on the mat"])
    assert scores["rouge_l"].tolist() == approx([10 / 13])


def test_generation_metrics_aggregate_and_match_sacrebleu():
    preds = ["the cat sat on the mat", "a quick brown fox", "hello world"]
    refs = ["the cat is on the mat", "the quick brown fox jumps", "hello world"]
    m = generation_metrics(preds, refs)
    scores = per_example_generation_scores(preds, refs)
    assert m["exact_match"] == approx(1 / 3)
    assert m["token_f1"] == approx(scores["token_f1"].mean())
    assert m["rouge_l"] == approx(scores["rouge_l"].mean())
    assert m["bleu"] == approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert m["chrf"] == approx(sacrebleu.corpus_chrf(preds, [refs]).score)
    assert "json_valid_rate" not in m and _plain(m)


def test_json_valid_rate_strips_fences():
    preds = ['{"a": 1}', '```json\n[1, 2]\n```', "not json", '```\n{"b": 2}\n```']
    assert generation_metrics(preds, ["x"] * 4, expects_json=True)["json_valid_rate"] == 0.75


def test_generation_length_mismatch():
    with pytest.raises(InputError, match=r"predictions and references have different lengths \(2 vs 1\)"):
        generation_metrics(["a", "b"], ["a"])


def test_mcnemar_exact_p_value():
    # 10 examples only A gets right, 2 only B, 5 both, 3 neither: p = 2 * (1 + 12 + 66) / 2**12
    a = [True] * 10 + [False] * 2 + [True] * 5 + [False] * 3
    b = [False] * 10 + [True] * 2 + [True] * 5 + [False] * 3
    result = mcnemar(a, b)
    assert (result["a_only"], result["b_only"]) == (10, 2)
    assert result["p_value"] == approx(158 / 4096) == approx(binomtest(10, 12, 0.5).pvalue)
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0
    assert _plain(result)


def test_paired_bootstrap_finds_a_clear_gain_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.1, 200)
    b = a + 0.05 + rng.normal(0, 0.05, 200)
    gain = paired_bootstrap(a, b)
    assert gain["p_value"] < 0.05 and gain["ci"][0] > 0
    assert gain["delta"] == approx(0.05, abs=0.01)
    null = paired_bootstrap(a, rng.permutation(a))
    assert null["p_value"] > 0.05 and null["ci"][0] < 0 < null["ci"][1]
    assert null["delta"] == approx(0.0, abs=1e-12)
    assert paired_bootstrap(a, a + 0.05)["p_value"] == approx(2 / 1001)  # never 0 with finite resamples
    assert _plain(gain) and gain == paired_bootstrap(a, b)  # seeded: the same inputs give the same report


def test_bootstrap_ci_contains_point_and_narrows_with_n():
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        correct = rng.random(n) < 0.7
        low, high = bootstrap_ci(lambda idx: correct[idx].mean(), n)
        assert low <= correct.mean() <= high
        return high - low

    assert width(2000) < width(50) / 3


def test_bootstrap_ci_recomputes_macro_f1_on_resamples_and_is_deterministic():
    y_true, y_pred = np.array(Y_TRUE * 20), np.array(Y_PRED * 20)

    def macro_f1(idx: np.ndarray) -> float:
        return skm.f1_score(y_true[idx], y_pred[idx], labels=LABELS, average="macro", zero_division=0)

    low, high = bootstrap_ci(macro_f1, len(y_true), resamples=100, seed=5)
    assert low < 59 / 90 < high
    assert (low, high) == bootstrap_ci(macro_f1, len(y_true), resamples=100, seed=5)


def test_bootstrap_ci_edge_sizes():
    low, high = bootstrap_ci(lambda idx: 1.0, 0)
    assert np.isnan(low) and np.isnan(high)
    assert bootstrap_ci(lambda idx: np.array([0.4])[idx].mean(), 1) == (0.4, 0.4)


def test_headline_metrics():
    assert headline("classification") == ["accuracy", "f1_macro", "precision_macro", "recall_macro"]
    assert headline("sft") == headline("generation") == ["exact_match", "token_f1", "rouge_l", "chrf"]
    with pytest.raises(InputError, match="Unknown task 'vision'"):
        headline("vision")
