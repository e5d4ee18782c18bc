"""Turn one contender's raw outputs into metrics with confidence intervals, and compare two contenders.

Kept apart from the model code so every number here is a pure function of predictions and references.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.evaluate import entities, metrics

CI_METRICS = {"classification": ("accuracy", "f1_macro"), "sft": ("exact_match", "token_f1", "rouge_l")}


def score_classification(proba: np.ndarray, references: list[str], labels: list[str], resamples: int,
                         positive: str | None = None) -> dict[str, Any]:
    predicted = [labels[i] for i in proba.argmax(axis=1)]
    result = metrics.classification_metrics(references, predicted, labels, proba=proba, positive=positive)
    truth = np.asarray([labels.index(r) for r in references], dtype=np.int64)
    guess = proba.argmax(axis=1)
    statistics = {"accuracy": lambda idx: float((truth[idx] == guess[idx]).mean()),
                  "f1_macro": lambda idx: _f1_macro(truth[idx], guess[idx], len(labels))}
    for name in CI_METRICS["classification"]:
        result[f"{name}_ci"] = list(metrics.bootstrap_ci(statistics[name], len(references), resamples=resamples))
    return {"metrics": result, "predicted": predicted, "correct": (truth == guess).tolist(),
            "confidence": proba.max(axis=1).tolist()}


def _f1_macro(truth: np.ndarray, guess: np.ndarray, k: int) -> float:
    """Macro F1 from one bincount (sklearn's definition, zero_division=0): fast enough for 1,000 resamples."""
    confusion = np.bincount(truth * k + guess, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(0) + confusion.sum(1)
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)))


def score_generation(output: dict[str, Any], references: list[str], expects_json: bool,
                     resamples: int) -> dict[str, Any]:
    predictions = output["predictions"]
    result = metrics.generation_metrics(predictions, references, expects_json=expects_json)
    per_example = {k: np.asarray(v, dtype=np.float64)
                   for k, v in metrics.per_example_generation_scores(predictions, references).items()}
    for name in CI_METRICS["sft"]:
        values = per_example[name]
        result[f"{name}_ci"] = list(metrics.bootstrap_ci(lambda idx, v=values: float(v[idx].mean()), len(values),
                                                         resamples=resamples))
    if "nll" in output:
        result["perplexity"] = float(np.exp(output["nll"].sum() / max(int(output["tokens"].sum()), 1)))
    return {"metrics": result, "predicted": predictions, "per_example": {k: v.tolist() for k, v in
                                                                         per_example.items()}}


def compare(task: str, tuned: dict[str, Any], other: dict[str, Any], resamples: int) -> dict[str, Any]:
    """The tuned model against another one on the same examples: metric deltas and a paired significance test."""
    names = metrics.headline(task)
    deltas = {n: tuned["metrics"][n] - other["metrics"][n] for n in names
              if tuned["metrics"].get(n) is not None and other["metrics"].get(n) is not None}
    if task == "classification":
        test = metrics.mcnemar(other["correct"], tuned["correct"])
    elif task == "token_classification":
        test = entities.paired_bootstrap_f1(other["counts"], tuned["counts"], resamples)
    else:
        test = metrics.paired_bootstrap(other["per_example"]["token_f1"], tuned["per_example"]["token_f1"],
                                         resamples=resamples)
        test["metric"] = "token_f1"
    return {"deltas": deltas, "test": test}


def verdicts(result: dict[str, Any], alpha: float = 0.05) -> list[dict[str, Any]]:
    """Win, loss or no clear difference against each base line, from the paired test the report already ran.

    A fine-tuned model that loses to its prompted base is the most important thing a report can say, so it is said
    in words (and raised as a flag) rather than left to a reader of the delta table. The metric is the one the
    paired test scored: token F1 for generation, entity F1 for spans, accuracy for classifiers (McNemar)."""
    labels = {c["key"]: c["label"] for c in result["contenders"]}
    out = []
    for c in result["contenders"]:
        if c["role"] != "base":
            continue
        cmp = result["comparisons"][c["key"]]
        test = cmp["test"]
        metric = test.get("metric") or {"classification": "accuracy"}.get(result["task"], "f1_micro")
        delta = test.get("delta", cmp["deltas"].get(metric))
        significant = test["p_value"] < alpha
        outcome = "no clear difference" if not significant or not delta else "wins" if delta > 0 else "loses"
        ci = f"95% CI {test['ci'][0]:+.3f} to {test['ci'][1]:+.3f}, " if test.get("ci") else ""
        words = {"wins": "beats", "loses": "loses to", "no clear difference": "is not clearly better than"}[outcome]
        out.append({"against": c["key"], "metric": metric, "delta": delta, "ci": test.get("ci"),
                    "p_value": test["p_value"], "outcome": outcome,
                    "sentence": f"The fine-tuned model {words} {labels[c['key']]} on {metric}: {delta:+.3f} "
                                f"({ci}{test['test']} p = {test['p_value']:.3g})."})
    return out


def per_class_deltas(tuned: dict[str, Any], base: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {label: {"base": base["metrics"]["per_class"][label]["f1"], "tuned": values["f1"]}
            for label, values in tuned["metrics"]["per_class"].items()}


def worst_classified(references: list[str], scored: dict[str, Any], texts: list[str], k: int = 10) -> list[dict]:
    """The most confidently wrong predictions: where the model is sure and mistaken."""
    wrong = [i for i, ok in enumerate(scored["correct"]) if not ok]
    wrong.sort(key=lambda i: -scored["confidence"][i])
    return [{"row": i, "text": texts[i], "reference": references[i], "predicted": scored["predicted"][i],
             "confidence": scored["confidence"][i]} for i in wrong[:k]]


def worst_generated(references: list[str], scored: dict[str, Any], prompts: list[Any], k: int = 10) -> list[dict]:
    """The answers furthest from their references by token F1."""
    f1 = scored["per_example"]["token_f1"]
    order = sorted(range(len(f1)), key=lambda i: f1[i])[:k]
    return [{"row": i, "prompt": last_user(prompts[i]), "reference": references[i],
             "predicted": scored["predicted"][i], "token_f1": f1[i]} for i in order]


def last_user(prompt: Any) -> str:
    """The question of a generation example: its last user turn, or the plain prompt."""
    if isinstance(prompt, str):
        return prompt
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")


def confused_pairs(confusion: list[list[int]], labels: list[str], k: int = 5) -> list[dict[str, Any]]:
    pairs = [{"true": labels[i], "predicted": labels[j], "count": n}
             for i, row in enumerate(confusion) for j, n in enumerate(row) if i != j and n]
    return sorted(pairs, key=lambda p: -p["count"])[:k]
