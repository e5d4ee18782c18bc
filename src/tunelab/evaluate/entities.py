"""Entity metrics for token classification: strict span match, per type and averaged, with bootstrap intervals.

An entity is found only when a prediction has its type and both character boundaries (seqeval's strict match on
spans): "New York" for "New York City" and a right span with the wrong type are each a false positive and a false
negative. Precision, recall and F1 per type; micro averages pool every entity; macro averages are over the types
with at least one entity in the references (so contenders are averaged over the same types, and a type the model
never saw still counts against it). Intervals resample sentences, as the errors of one sentence go together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tunelab.data import bio
from tunelab.evaluate import metrics

CI_METRICS = ("f1_micro", "f1_macro")


def _spans(entities: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    return [(e["start"], e["end"], e["label"]) for e in entities]


def counts(predicted: list[list[dict]], references: list[list[dict]], types: list[str]) -> np.ndarray:
    """[examples, types, (tp, fp, fn)]: every example's strict-match counts per type."""
    index = {kind: i for i, kind in enumerate(types)}
    out = np.zeros((len(references), len(types), 3), dtype=np.int64)
    for row, (guess, gold) in enumerate(zip(predicted, references, strict=True)):
        for kind, values in bio.strict_counts(_spans(gold), _spans(guess)).items():
            out[row, index[kind]] += values
    return out


def _rates(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 (0 where undefined), elementwise."""
    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros(np.shape(a)), where=b > 0)

    return ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)


def summary(totals: np.ndarray, types: list[str]) -> dict[str, Any]:
    """Micro, macro and per-type precision / recall / F1 from [types, 3] totals."""
    tp, fp, fn = (totals[:, k].astype(np.float64) for k in range(3))
    precision, recall, f1 = _rates(tp, fp, fn)
    micro = _rates(tp.sum(), fp.sum(), fn.sum())
    scored = (tp + fn) > 0
    result: dict[str, Any] = {"precision_micro": float(micro[0]), "recall_micro": float(micro[1]),
                              "f1_micro": float(micro[2])}
    for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
        result[f"{name}_macro"] = float(values[scored].mean()) if scored.any() else 0.0
    result["per_type"] = {kind: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                                 "support": int(tp[i] + fn[i]), "predicted": int(tp[i] + fp[i])}
                          for i, kind in enumerate(types)}
    result["entities"] = {"gold": int(tp.sum() + fn.sum()), "predicted": int(tp.sum() + fp.sum()),
                          "correct": int(tp.sum())}
    return result


def _statistic(table: np.ndarray, name: str) -> Callable[[np.ndarray], float]:
    """f1_micro or f1_macro of the sentences an index array picks (what bootstrap_ci resamples)."""
    def statistic(idx: np.ndarray) -> float:
        tp, fp, fn = table[idx].sum(axis=0).T
        if name == "f1_micro":
            return bio.f1(tp.sum(), fp.sum(), fn.sum())
        scored = (tp + fn) > 0
        return float(_rates(tp, fp, fn)[2][scored].mean()) if scored.any() else 0.0

    return statistic


def score_entities(predicted: list[list[dict]], references: list[list[dict]], types: list[str],
                   resamples: int) -> dict[str, Any]:
    """One contender's entities against the references: metrics with intervals, and per-sentence counts/F1."""
    table = counts(predicted, references, types)
    result = summary(table.sum(axis=0), types)
    for name in CI_METRICS:
        result[f"{name}_ci"] = list(metrics.bootstrap_ci(_statistic(table, name), len(references),
                                                         resamples=resamples))
    sentence = table.sum(axis=1)  # [examples, 3]
    per_sentence = [bio.f1(*row) if row.any() else 1.0 for row in sentence]  # nothing to find, nothing found: right
    return {"metrics": result, "predicted": predicted, "counts": table,
            "correct": [bool(row[1] == row[2] == 0) for row in sentence], "per_example": {"entity_f1": per_sentence}}


def paired_bootstrap_f1(table_a: np.ndarray, table_b: np.ndarray, resamples: int = 1000,
                        seed: int = 0) -> dict[str, Any]:
    """Micro-F1 gain of B over A with a 95% interval and a two-sided p-value, resampling the same sentences."""
    a, b = table_a.sum(axis=1), table_b.sum(axis=1)  # [examples, 3]

    def gain(idx: np.ndarray) -> float:
        return bio.f1(*b[idx].sum(axis=0)) - bio.f1(*a[idx].sum(axis=0))

    rng = np.random.default_rng(seed)
    deltas = np.array([gain(rng.integers(0, len(a), size=len(a))) for _ in range(resamples)])
    delta = gain(np.arange(len(a)))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {"delta": delta, "ci": [float(low), float(high)], "p_value": metrics.two_sided_p(delta, deltas),
            "test": "paired bootstrap", "metric": "f1_micro"}


def worst_tagged(texts: list[str], references: list[list[dict]], scored: dict[str, Any], k: int = 10) -> list[dict]:
    """The sentences with the most entity errors (false positives + false negatives)."""
    errors = scored["counts"][:, :, 1:].sum(axis=(1, 2))
    order = [i for i in np.argsort(-errors, kind="stable")[:k] if errors[i]]
    return [{"row": int(i), "text": texts[i], "reference": references[i], "predicted": scored["predicted"][i],
             "errors": int(errors[i])} for i in order]


def side_by_side(texts: list[str], references: list[list[dict]], predicted: dict[str, list[list[dict]]],
                 k: int = 5) -> list[dict[str, Any]]:
    """The first k sentences with their gold entities and each contender's, for the report."""
    return [{"row": i, "text": texts[i], "reference": references[i],
             "predicted": {key: rows[i] for key, rows in predicted.items()}} for i in range(min(k, len(texts)))]
