"""How a model's quality differs between groups of the test split (region, language, customer segment...).

A model can look good on average while failing one group. These functions split the evaluation by the values of one
column, report each group's metrics, the gap between the best and worst group, and raise a flag with readable
reasons when a gap exceeds the threshold. Classification also gets fairlearn's demographic parity and equalized
odds differences. The caller adds the column name to the result.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import partial

import pandas as pd
from fairlearn.metrics import MetricFrame, count, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, f1_score

from tunelab.errors import InputError

MISSING = "(missing)"


def classification_by_group(y_true: Sequence[str], y_pred: Sequence[str], groups: Sequence[str],
                            labels: Sequence[str], threshold: float = 0.1, min_group_size: int = 1) -> dict:
    """Accuracy and macro F1 per group, their gaps, and parity/odds differences between groups.

    Args:
        y_true: the true label of each example.
        y_pred: the predicted label of each example.
        groups: each example's value in the group column; None or NaN becomes the group "(missing)".
        labels: all labels of the task; they decide the positive label and the one-vs-rest comparisons.
        threshold: a gap or difference above this flags the model.
        min_group_size: smaller groups are reported but left out of gaps and differences ("skipped_groups").

    Returns:
        {"groups": {group: {"accuracy", "f1_macro", "count"}}, "gaps": {metric: max - min or None},
        "demographic_parity_difference", "equalized_odds_difference", "flagged", "reasons", "threshold",
        "skipped_groups"}.

    Raises:
        InputError: the three sequences differ in length, or are empty.
    """
    groups = _clean_groups(groups, {"y_true": y_true, "y_pred": y_pred})
    # macro F1 over the labels seen in each group: a group with only "ham" rows is not marked down for "spam"
    f1_macro = partial(f1_score, average="macro", zero_division=0)
    frame = MetricFrame(metrics={"accuracy": accuracy_score, "f1_macro": f1_macro, "count": count},
                        y_true=list(y_true), y_pred=list(y_pred), sensitive_features=groups)
    per_group = {str(g): {"accuracy": float(row["accuracy"]), "f1_macro": float(row["f1_macro"]),
                          "count": int(row["count"])} for g, row in frame.by_group.iterrows()}
    result = _compare(per_group, ["accuracy", "f1_macro"], threshold, min_group_size)
    kept = [i for i, g in enumerate(groups) if g not in result["skipped_groups"]]
    for name, difference in (("demographic_parity_difference", demographic_parity_difference),
                             ("equalized_odds_difference", equalized_odds_difference)):
        value, label = _worst_class(difference, [y_true[i] for i in kept], [y_pred[i] for i in kept],
                                    [groups[i] for i in kept], labels)
        result[name] = value
        if value is not None and value > threshold:
            result["flagged"] = True
            which = "the largest over labels, one against the rest" if len(labels) > 2 else "the positive label"
            result["reasons"].append(f"{name.replace('_', ' ')} is {value:.2f} for label '{label}' ({which}); "
                                     f"threshold {threshold:.2f}")
    return result


def scores_by_group(scores: dict[str, Sequence[float]], groups: Sequence[str], threshold: float = 0.1,
                    min_group_size: int = 1) -> dict:
    """Per-group means of per-example scores (e.g. token_f1, exact_match of a generation model), gaps and flags.

    Args:
        scores: metric name -> one score per example.
        groups: each example's value in the group column; None or NaN becomes the group "(missing)".
        threshold: a gap above this flags the model.
        min_group_size: smaller groups are reported but left out of the gaps ("skipped_groups").

    Returns:
        {"groups": {group: {metric: mean, "count"}}, "gaps", "flagged", "reasons", "threshold", "skipped_groups"}.

    Raises:
        InputError: a score list and the groups differ in length, or they are empty.
    """
    groups = _clean_groups(groups, scores)
    frame = pd.DataFrame({name: [float(v) for v in values] for name, values in scores.items()})
    grouped = frame.groupby(pd.Series(groups, name="group"))
    means, sizes = grouped.mean(), grouped.size()
    per_group = {str(g): {**{m: float(v) for m, v in row.items()}, "count": int(sizes[g])}
                 for g, row in means.iterrows()}
    return _compare(per_group, list(scores), threshold, min_group_size)


def _clean_groups(groups: Sequence, columns: dict[str, Sequence]) -> list[str]:
    """Group values as strings, missing ones named; every column must have one value per group value."""
    lengths = {"groups": len(groups), **{name: len(values) for name, values in columns.items()}}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise InputError(f"Per-group evaluation needs one value per example everywhere, but {got}.",
                         "Pass the group column of the same test rows that were predicted.")
    if not groups:
        raise InputError("Per-group evaluation got no examples.", "Check that the test split is not empty.")
    return [MISSING if g is None or (isinstance(g, float) and math.isnan(g)) else str(g) for g in groups]


def _compare(per_group: dict[str, dict], metrics: list[str], threshold: float, min_group_size: int) -> dict:
    """Gap (best minus worst group) per metric over the groups large enough, with a reason per gap too large."""
    skipped = [g for g, values in per_group.items() if values["count"] < min_group_size]
    compared = {g: values for g, values in per_group.items() if g not in skipped}
    gaps: dict[str, float | None] = {}
    reasons = []
    for metric in metrics:
        if len(compared) < 2:
            gaps[metric] = None
            continue
        best = max(compared, key=lambda g: compared[g][metric])
        worst = min(compared, key=lambda g: compared[g][metric])
        gaps[metric] = compared[best][metric] - compared[worst][metric]
        if gaps[metric] > threshold:
            reasons.append(f"{metric} differs by {gaps[metric]:.2f} between groups ({best} "
                           f"{compared[best][metric]:.2f}, {worst} {compared[worst][metric]:.2f}); "
                           f"threshold {threshold:.2f}")
    return {"groups": per_group, "gaps": gaps, "flagged": bool(reasons), "reasons": reasons, "threshold": threshold,
            "skipped_groups": skipped}


def _worst_class(difference, y_true: list[str], y_pred: list[str], groups: list[str],
                 labels: Sequence[str]) -> tuple[float | None, str | None]:
    """fairlearn's binary `difference` for the positive label, or the largest one-vs-rest value over all labels.

    A binary task's positive label is its rarer true label (a tie picks labels[1]), as in "spam" vs "ham".
    """
    if len(set(groups)) < 2:
        return None, None
    if len(labels) == 2:
        frequency = Counter(y_true)
        classes = [labels[0] if frequency[labels[0]] < frequency[labels[1]] else labels[1]]
    else:
        classes = list(labels)
    values = {label: float(difference([t == label for t in y_true], [p == label for p in y_pred],
                                      sensitive_features=groups)) for label in classes}
    label = max(values, key=values.__getitem__)
    return values[label], label
