"""report.html: one self-contained page (charts as embedded PNG, no network) over the evaluation's eval.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tunelab.evaluate import charts
from tunelab.evaluate.metrics import headline
from tunelab.html import data_uri, render

TEMPLATE = Path(__file__).parent / "templates" / "report.html"  # package data


def write_report(result: dict[str, Any], path: Path) -> Path:
    html = render(TEMPLATE, {"fmt": _fmt}, r=result, labels=_labels(result), figures=_figures(result),
                  headline=headline(result["task"]), explanations=_explanations(result))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a reader never sees half a report
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _labels(result: dict[str, Any]) -> dict[str, str]:
    return {c["key"]: c["label"] for c in result["contenders"]}


def _figure(png: bytes, caption: str, alt: str) -> dict[str, str]:
    return {"src": data_uri(png), "caption": caption, "alt": alt}


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    """Every chart of the report, keyed by section; sections without data get none."""
    names = _labels(result)
    metrics = result["metrics"]
    order = [c["key"] for c in result["contenders"]]
    scores = {names[k]: metrics[k] for k in order}
    out: dict[str, Any] = {"headline": _figure(
        charts.metric_bars(scores, headline(result["task"]), "Base against fine-tuned"),
        "Headline metrics per model, with 95% bootstrap confidence intervals where computed.",
        "base-vs-tuned")}
    if result["task"] == "classification":
        out.update(_classification_figures(result, names, order))
    if result["task"] == "token_classification":
        out["per_type"] = _figure(charts.class_deltas(result["per_type"]), "Entity F1 per type: fine-tuned minus base.",
                                  "per-type-deltas")
    if result.get("bias"):
        tuned_bias = result["bias"][result["tuned"]]
        metric = {"classification": "accuracy", "token_classification": "entity_f1"}.get(result["task"], "token_f1")
        out["bias"] = _figure(charts.group_bars(tuned_bias["groups"], metric, f"{metric} per group (fine-tuned)"),
                              f"{metric} of the fine-tuned model per group.", "per-group")
    return out


def _classification_figures(result: dict[str, Any], names: dict[str, str], order: list[str]) -> dict[str, Any]:
    metrics = result["metrics"]
    tuned = result["tuned"]
    out: dict[str, Any] = {
        "per_class": _figure(charts.class_deltas(result["per_class"]), "F1 per class: fine-tuned minus base.",
                             "per-class-deltas"),
        "confusion": [_figure(charts.confusion(metrics[k]["confusion_matrix"], result["labels"], names[k]),
                              f"Confusion matrix of {names[k]} (rows: true label).", f"confusion-{k}")
                      for k in order if k == tuned or k.startswith("base:")],
        "reliability": _figure(charts.reliability({names[k]: metrics[k]["reliability"]["bins"] for k in order
                                                   if metrics[k].get("reliability")}),
                               "Reliability: accuracy against confidence per bin (the diagonal is perfect).",
                               "reliability"),
    }
    if all(metrics[k].get("roc_curve") for k in order):
        out["roc"] = _figure(charts.curves({names[k]: metrics[k]["roc_curve"] for k in order}, "roc"),
                             f"ROC curves (positive class: {metrics[tuned].get('positive')}).", "roc")
        out["pr"] = _figure(charts.curves({names[k]: metrics[k]["pr_curve"] for k in order}, "pr"),
                            "Precision-recall curves.", "pr")
    return out


def _explanations(result: dict[str, Any]) -> Markup:
    """Built by explain.render, which escapes every token itself."""
    return Markup((result.get("explanations") or {}).get("html", ""))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)
