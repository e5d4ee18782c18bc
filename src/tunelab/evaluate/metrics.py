"""Metrics for `tunelab eval`: pure functions whose results go straight into `eval.json`.

Every result is JSON-serialisable (plain floats, ints, lists and dicts) and unrounded, so a report can compare two
models exactly. Scales: classification and generation scores are fractions in [0, 1], except `bleu` and `chrf`,
which keep sacrebleu's 0-100 scale (listed in `HUNDRED_SCALE` so charts can put them beside the others).
Significance helpers (`bootstrap_ci`, `mcnemar`, `paired_bootstrap`) take per-example values, so the same
functions serve classification (correct / incorrect) and generation (`per_example_generation_scores`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import sacrebleu
from rouge_score import rouge_scorer
from scipy.stats import binomtest
from sklearn import metrics as skm

from tunelab.errors import InputError

HUNDRED_SCALE = frozenset({"bleu", "chrf"})  # metrics reported on 0-100, like sacrebleu
CALIBRATION_BINS = 10
MAX_CURVE_POINTS = 200  # keeps ROC / PR curves in eval.json small
_HEADLINES = {
    "classification": ["accuracy", "f1_macro", "precision_macro", "recall_macro"],
    "sft": ["exact_match", "token_f1", "rouge_l", "chrf"],
    "generation": ["exact_match", "token_f1", "rouge_l", "chrf"],
    "token_classification": ["f1_micro", "f1_macro", "precision_micro", "recall_micro"],  # entities (entities.py)
}
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)


def headline(task: str) -> list[str]:
    """The metric names shown in a report's headline chart for a task ("classification", "token_classification",
    "sft" or "generation")."""
    if task not in _HEADLINES:
        raise InputError(f"Unknown task '{task}' for headline metrics.", f"Use one of: {', '.join(_HEADLINES)}.")
    return list(_HEADLINES[task])


def _check_paired(a: Sequence[Any], b: Sequence[Any], names: str) -> None:
    """Refuse inputs that cannot be compared item by item; a silent zip would drop examples."""
    if len(a) != len(b):
        raise InputError(f"{names} have different lengths ({len(a)} vs {len(b)}).",
                         "Pass one value per example, in the same order.")
    if len(a) == 0:
        raise InputError(f"{names} are empty: there are no examples to score.")


# ---------------------------------------------------------------------------------------------------- classification


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                           proba: np.ndarray | None = None, positive: str | None = None) -> dict[str, Any]:
    """Accuracy, P/R/F1 (macro, micro, weighted, per class) and the confusion matrix, in `labels` order.

    With `proba` ([n, len(labels)], columns in `labels` order) it adds calibration (`ece`, `reliability`); for a
    binary task also `roc_auc`, `average_precision` and the two curves, when both classes occur in `y_true`.
    Classes that are never predicted score 0 precision instead of warning (zero_division=0).
    """
    labels = list(labels)
    _check_labels(y_true, y_pred, labels)
    result: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                         zero_division=0)
        result |= {f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)}
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    result["per_class"] = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                   "support": int(s[i])} for i, label in enumerate(labels)}
    result["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    result["labels"] = labels
    if proba is not None:
        proba = _check_proba(proba, len(y_true), labels)
        result |= calibration(y_true, proba, labels)
        if len(labels) == 2:
            result |= binary_curves(y_true, proba, labels, positive)
    return result


def _check_labels(y_true: Sequence[str], y_pred: Sequence[str], labels: list[str]) -> None:
    """Unknown labels would otherwise vanish from the per-class table and skew every average."""
    _check_paired(y_true, y_pred, "y_true and y_pred")
    if len(set(labels)) != len(labels) or not labels:
        raise InputError(f"Labels must be a non-empty list without duplicates, got {labels}.")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        unknown = sorted(set(values) - set(labels), key=str)
        if unknown:
            shown = ", ".join(map(repr, unknown[:5])) + (f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else "")
            raise InputError(f"{name} has labels that are not in labels: {shown}.",
                             f"Known labels: {', '.join(map(str, labels))}.")


def _check_proba(proba: np.ndarray, n: int, labels: list[str]) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (n, len(labels)):
        raise InputError(f"proba has shape {proba.shape}, expected ({n}, {len(labels)}).",
                         "Pass one row per example and one column per label, in labels order.")
    return proba


def calibration(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Expected calibration error over 10 equal-width bins of the top-class confidence, plus the bins themselves.

    Correctness is judged on argmax(proba), so this measures the probabilities, whatever decision rule made
    `y_pred`. Bins are (lower, upper] (the first also holds 0); only non-empty bins are listed.
    """
    proba = np.asarray(proba, dtype=float)
    confidence = proba.max(axis=1)
    correct = np.asarray(labels)[proba.argmax(axis=1)] == np.asarray(y_true)
    edges = np.arange(CALIBRATION_BINS + 1) / CALIBRATION_BINS  # exact tenths: 0.3, not 0.30000000000000004
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    bins, ece = [], 0.0
    for b in range(CALIBRATION_BINS):
        inside = which == b
        count = int(inside.sum())
        if count == 0:
            continue
        conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
        ece += count / len(confidence) * abs(acc - conf)
        bins.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "confidence": conf, "accuracy": acc,
                     "count": count})
    return {"ece": float(ece), "reliability": {"bins": bins}}


def default_positive(y_true: Sequence[str], labels: Sequence[str]) -> str:
    """The rarer label in y_true is usually the one of interest (fraud, spam); a tie picks labels[1]."""
    counts = Counter(y_true)
    first, second = labels
    return first if counts[first] < counts[second] else second


def binary_curves(y_true: Sequence[str], proba: np.ndarray, labels: Sequence[str],
                  positive: str | None = None) -> dict[str, Any]:
    """ROC-AUC, average precision and both curves for the positive label (curves cut to 200 points)."""
    positive = default_positive(y_true, labels) if positive is None else positive
    if positive not in labels:
        raise InputError(f"Positive label '{positive}' is not one of the labels {list(labels)}.")
    is_positive = np.asarray(y_true) == positive
    result: dict[str, Any] = {"positive": positive}
    if is_positive.all() or not is_positive.any():
        return result  # AUC and curves are undefined when y_true holds one class only
    score = np.asarray(proba, dtype=float)[:, list(labels).index(positive)]
    fpr, tpr, _ = skm.roc_curve(is_positive, score)
    precision, recall, _ = skm.precision_recall_curve(is_positive, score)
    return result | {
        "roc_auc": float(skm.roc_auc_score(is_positive, score)),
        "average_precision": float(skm.average_precision_score(is_positive, score)),
        "roc_curve": {"fpr": _thin(fpr), "tpr": _thin(tpr)},
        "pr_curve": {"precision": _thin(precision), "recall": _thin(recall)},
    }


def _thin(values: np.ndarray) -> list[float]:
    """At most MAX_CURVE_POINTS evenly spaced points, always keeping both ends."""
    keep = np.unique(np.linspace(0, len(values) - 1, min(len(values), MAX_CURVE_POINTS)).round().astype(int))
    return [float(v) for v in values[keep]]


# -------------------------------------------------------------------------------------------------------- generation


def normalize_answer(text: str) -> str:
    """Exact-match normal form: case-folded (lowercase), stripped, inner whitespace collapsed to one space."""
    return " ".join(text.casefold().split())


def _tokens(text: str) -> list[str]:
    """Token-F1 tokens: lowercase, Unicode punctuation removed, split on whitespace (articles are kept)."""
    kept = "".join(ch for ch in text.casefold() if not unicodedata.category(ch).startswith("P"))
    return kept.split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style bag-of-tokens F1; two empty answers agree (1.0), one empty answer scores 0.0."""
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def per_example_generation_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-example exact match (0/1), token F1 and ROUGE-L F-measure: the inputs of significance tests."""
    _check_paired(predictions, references, "predictions and references")
    pairs = list(zip(predictions, references, strict=True))
    return {
        "exact_match": np.array([float(normalize_answer(p) == normalize_answer(r)) for p, r in pairs]),
        "token_f1": np.array([token_f1(p, r) for p, r in pairs]),
        "rouge_l": np.array([_rouge().score(r, p)["rougeL"].fmeasure for p, r in pairs]),
    }


def is_valid_json(text: str) -> bool:
    """True when the text parses as JSON, after removing a ``` or ```json fence around it."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    try:
        json.loads(fenced.group(1) if fenced else stripped)
    except ValueError:
        return False
    return True


def generation_metrics(predictions: Sequence[str], references: Sequence[str],
                       expects_json: bool = False) -> dict[str, float]:
    """Corpus-level generation scores: means of the per-example scores, plus sacrebleu's BLEU and chrF (0-100)."""
    scores = per_example_generation_scores(predictions, references)
    result = {name: float(values.mean()) for name, values in scores.items()}
    result["bleu"] = float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)
    result["chrf"] = float(sacrebleu.corpus_chrf(list(predictions), [list(references)]).score)
    if expects_json:
        result["json_valid_rate"] = sum(map(is_valid_json, predictions)) / len(predictions)
    return result


# ------------------------------------------------------------------------------------------------------ significance


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic`, which receives an index array (n draws with replacement).

    Indices rather than values let a caller recompute any statistic on the resample (macro F1, ROC-AUC).
    n=0 gives (nan, nan); n=1 gives the point value twice. Resamples where the statistic is nan are skipped.
    """
    if not 0 < confidence < 1 or resamples < 1:
        raise InputError(f"bootstrap_ci needs 0 < confidence < 1 and resamples >= 1, got {confidence}, {resamples}.")
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=float)
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test: are the examples only A gets right as many as those only B gets right?"""
    _check_paired(correct_a, correct_b, "correct_a and correct_b")
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p_value = 1.0 if a_only + b_only == 0 else float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p_value": p_value, "test": "exact McNemar (binomial)"}


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float], resamples: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """Mean improvement of B over A with a 95% percentile interval and a two-sided bootstrap p-value.

    p = 2 * (k + 1) / (resamples + 1), capped at 1, where k counts resampled deltas on the other side of 0 from
    the observed one (0 included); the +1 keeps a finite number of resamples from claiming p = 0.
    """
    _check_paired(scores_a, scores_b, "scores_a and scores_b")
    diffs = np.asarray(scores_b, dtype=float) - np.asarray(scores_a, dtype=float)
    delta = float(diffs.mean())
    deltas = _resampled_means(diffs, resamples, np.random.default_rng(seed))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return {"delta": delta, "ci": [float(low), float(high)], "p_value": two_sided_p(delta, deltas),
            "test": "paired bootstrap"}


def two_sided_p(delta: float, deltas: np.ndarray) -> float:
    """The bootstrap p-value of an observed difference, as `paired_bootstrap` documents it."""
    if delta == 0:
        return 1.0
    other_side = int((deltas <= 0).sum()) if delta > 0 else int((deltas >= 0).sum())
    return min(1.0, 2 * (other_side + 1) / (len(deltas) + 1))


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `resamples` bootstrap resamples, drawn in chunks of about 4M indices to bound memory."""
    chunk = max(1, 4_000_000 // len(values))
    means = [values[rng.integers(0, len(values), size=(min(chunk, resamples - start), len(values)))].mean(axis=1)
             for start in range(0, resamples, chunk)]
    return np.concatenate(means)
