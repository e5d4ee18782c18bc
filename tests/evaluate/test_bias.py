"""Per-group evaluation: exact gaps on constructed cases, and parity numbers that agree with fairlearn's own."""

from __future__ import annotations

import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from tunelab.errors import InputError
from tunelab.evaluate.bias import classification_by_group, scores_by_group

LABELS = ["ham", "spam"]


def test_model_wrong_for_half_of_one_group_is_flagged_with_the_gap():
    y_true = ["spam", "ham", "spam", "ham"] * 2
    y_pred = ["spam", "ham", "spam", "ham", "spam", "ham", "ham", "spam"]  # south: last two wrong
    result = classification_by_group(y_true, y_pred, ["north"] * 4 + ["south"] * 4, LABELS)

    assert result["groups"]["north"] == {"accuracy": 1.0, "f1_macro": 1.0, "count": 4}
    assert result["groups"]["south"] == {"accuracy": 0.5, "f1_macro": 0.5, "count": 4}
    assert result["gaps"] == {"accuracy": 0.5, "f1_macro": 0.5}
    # both groups predict spam half the time, but south's errors split into a TPR and an FPR gap of 0.5
    assert result["demographic_parity_difference"] == 0.0
    assert result["equalized_odds_difference"] == 0.5
    assert result["flagged"] is True
    assert result["reasons"][0] == ("accuracy differs by 0.50 between groups (north 1.00, south 0.50); "
                                    "threshold 0.10")
    assert any("equalized odds difference is 0.50 for label 'spam'" in r for r in result["reasons"])


def test_same_error_pattern_in_every_group_is_not_flagged():
    y_true = ["spam", "spam", "ham", "ham"] * 2
    y_pred = ["spam", "ham", "ham", "spam"] * 2
    result = classification_by_group(y_true, y_pred, ["north"] * 4 + ["south"] * 4, LABELS)

    assert result["gaps"] == {"accuracy": 0.0, "f1_macro": 0.0}
    assert result["demographic_parity_difference"] == 0.0
    assert result["equalized_odds_difference"] == 0.0
    assert (result["flagged"], result["reasons"]) == (False, [])


def test_binary_differences_match_fairlearn_on_the_rarer_label():
    y_true = ["ok", "ok", "fraud", "ok", "ok", "fraud", "ok", "ok", "ok", "fraud", "ok", "ok"]
    y_pred = ["ok", "fraud", "fraud", "ok", "ok", "ok", "ok", "fraud", "fraud", "fraud", "ok", "ok"]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "c", "c"]
    result = classification_by_group(y_true, y_pred, groups, ["fraud", "ok"], threshold=0.9)

    positive = ([t == "fraud" for t in y_true], [p == "fraud" for p in y_pred])
    assert result["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(*positive, sensitive_features=groups))
    assert result["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(*positive, sensitive_features=groups))
    assert result["demographic_parity_difference"] == pytest.approx(0.25)  # a, c: 2/4 fraud; b: 1/4


def test_multiclass_reports_the_largest_one_vs_rest_difference_and_its_label():
    y_true = ["a", "b", "c", "a", "b", "c"]
    y_pred = ["a", "b", "c", "c", "c", "c"]  # group y predicts "c" for everything
    groups = ["x", "x", "x", "y", "y", "y"]
    result = classification_by_group(y_true, y_pred, groups, ["a", "b", "c"])

    per_label = {label: demographic_parity_difference([t == label for t in y_true], [p == label for p in y_pred],
                                                      sensitive_features=groups) for label in "abc"}
    assert per_label["c"] == pytest.approx(2 / 3) and max(per_label.values()) == per_label["c"]
    assert result["demographic_parity_difference"] == pytest.approx(2 / 3)
    assert any(r.startswith("demographic parity difference is 0.67 for label 'c' (the largest over labels")
               for r in result["reasons"])


def test_missing_group_values_form_their_own_group_and_small_groups_are_skipped():
    y_true = ["spam", "ham", "spam", "ham", "spam", "ham"]
    y_pred = ["spam", "ham", "spam", "ham", "ham", "spam"]
    result = classification_by_group(y_true, y_pred, ["eu", "eu", "us", "us", None, float("nan")], LABELS,
                                     min_group_size=2)

    assert result["groups"]["(missing)"] == {"accuracy": 0.0, "f1_macro": 0.0, "count": 2}
    assert result["skipped_groups"] == []
    small = classification_by_group(y_true, y_pred, ["eu", "eu", "us", "us", "us", None], LABELS, min_group_size=2)
    assert small["skipped_groups"] == ["(missing)"]
    assert small["gaps"]["accuracy"] == pytest.approx(1 - 2 / 3)  # eu vs us only


def test_scores_by_group_flags_a_gap_in_the_mean():
    scores = {"exact_match": [1, 1, 1, 0, 1, 0], "token_f1": [0.9, 0.8, 0.7, 0.8, 0.8, 0.75]}
    result = scores_by_group(scores, ["de", "de", "de", "fr", "fr", None])

    assert result["groups"]["de"] == {"exact_match": 1.0, "token_f1": pytest.approx(0.8), "count": 3}
    assert result["groups"]["(missing)"]["count"] == 1
    assert result["gaps"]["exact_match"] == 1.0  # de 1.0 vs (missing) 0.0
    assert result["gaps"]["token_f1"] == pytest.approx(0.05)
    assert result["flagged"] is True
    assert result["reasons"] == ["exact_match differs by 1.00 between groups (de 1.00, (missing) 0.00); "
                                 "threshold 0.10"]
    assert "demographic_parity_difference" not in result


def test_length_mismatch_names_the_lengths():
    with pytest.raises(InputError, match="groups has 2, y_true has 3, y_pred has 3"):
        classification_by_group(["a"] * 3, ["a"] * 3, ["x", "y"], ["a", "b"])
    with pytest.raises(InputError, match="groups has 3, token_f1 has 2"):
        scores_by_group({"token_f1": [0.1, 0.2]}, ["x", "y", "z"])
