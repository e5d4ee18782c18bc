"""PNG charts for the evaluation report: each function takes plain metric dicts and returns PNG bytes.

Figures are built with `matplotlib.figure.Figure` and the Agg renderer, never pyplot, so no global figure list
grows and charts can be drawn from any thread. Models keep one colour across charts by their position in the
dict: the first (the base model) is grey, the others take distinct colours. Long label lists are cut to
`MAX_LABELS` with a note saying what was left out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tunelab.errors import InputError
from tunelab.evaluate.metrics import HUNDRED_SCALE

MAX_LABELS = 30
BASE_COLOR = "#8c8c8c"
MODEL_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728", "#17becf", "#e377c2", "#bcbd22"]
GAIN, LOSS = "#2ca02c", "#d62728"


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """Grey for the first model (the base), then a fixed cycle, so a model looks the same in every chart."""
    return {name: BASE_COLOR if i == 0 else MODEL_COLORS[(i - 1) % len(MODEL_COLORS)] for i, name in enumerate(models)}


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig: Figure) -> bytes:
    """Render and forget: a bare Figure is not registered with pyplot, so there is nothing to close."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _require(items: Any, what: str) -> None:
    if not items:
        raise InputError(f"Nothing to chart: {what} is empty.")


def _note_cut(fig: Figure, shown: int, total: int, what: str) -> None:
    if shown < total:
        fig.supxlabel(f"Showing {shown} of {total} {what}.", fontsize=8, color="#555")


def _rotate_ticks(ax: Axes, labels: Sequence[str]) -> None:
    """Tilt x labels once they would collide, so long class or group names stay readable."""
    long = len(labels) > 6 or max((len(str(label)) for label in labels), default=0) > 12
    ax.set_xticklabels(labels, rotation=35 if long else 0, ha="right" if long else "center")


# ------------------------------------------------------------------------------------------------------ bar charts


def metric_bars(scores: dict[str, dict[str, Any]], metrics: list[str], title: str) -> bytes:
    """Grouped bars: one group per metric, one bar per model (e.g. base beside fine-tuned).

    `scores` is {model: {metric: value, "<metric>_ci": [lo, hi] (optional, drawn as an error bar)}}. Metrics on
    a 0-100 scale (bleu, chrf) are drawn divided by 100 so they share the axis; their bars print the raw value.
    A metric a model lacks leaves a gap.
    """
    _require(scores, "scores")
    _require(metrics, "metrics")
    shown = metrics[:MAX_LABELS]
    fig, ax = _figure(max(5.0, 1.1 * len(shown) * max(1, len(scores)) ** 0.5 + 2), 4.2)
    width = 0.8 / len(scores)
    x = np.arange(len(shown))
    for i, (model, color) in enumerate(model_colors(list(scores)).items()):
        heights, errors, texts = _bar_values(scores[model], shown)
        bars = ax.bar(x + (i - (len(scores) - 1) / 2) * width, heights, width, label=model, color=color,
                      yerr=errors, capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333"})
        ax.bar_label(bars, labels=texts, padding=2, fontsize=7)
    ax.set_xticks(x)
    _rotate_ticks(ax, [f"{m} (÷100)" if m in HUNDRED_SCALE else m for m in shown])
    ax.set_ylabel("score")
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.08)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    _note_cut(fig, len(shown), len(metrics), "metrics")
    return _png(fig)


def _bar_values(model_scores: dict[str, Any], metrics: list[str]) -> tuple[list[float], np.ndarray, list[str]]:
    """Heights (scaled to 0-1), asymmetric error bars (0 where no CI) and the printed labels for one model."""
    heights, errors, texts = [], [], []
    for metric in metrics:
        value = model_scores.get(metric)
        if value is None:
            heights.append(np.nan)
            errors.append([0.0, 0.0])
            texts.append("")
            continue
        scale = 100.0 if metric in HUNDRED_SCALE else 1.0
        low, high = model_scores.get(f"{metric}_ci") or (value, value)
        heights.append(value / scale)
        errors.append([max(0.0, (value - low) / scale), max(0.0, (high - value) / scale)])
        texts.append(f"{value:.1f}" if scale > 1 else f"{value:.3f}")
    return heights, np.array(errors).T, texts


def class_deltas(per_class: dict[str, dict[str, float]], metric: str = "f1", base: str = "base",
                 tuned: str = "tuned") -> bytes:
    """Horizontal bars of tuned minus base for each class, largest gain on top, gains green and losses red.

    `per_class` is {label: {base: score, tuned: score}}; `base` / `tuned` name the two keys and `metric` only
    labels the axis. Beyond MAX_LABELS classes, the largest changes (either way) are shown.
    """
    _require(per_class, "per_class")
    deltas = {label: pair[tuned] - pair[base] for label, pair in per_class.items()}
    biggest = sorted(deltas, key=lambda label: abs(deltas[label]), reverse=True)[:MAX_LABELS]
    shown = sorted(biggest, key=lambda label: deltas[label])
    values = [deltas[label] for label in shown]
    fig, ax = _figure(6.5, 1.2 + 0.3 * len(shown))
    bars = ax.barh([str(label) for label in shown], values, color=[GAIN if v >= 0 else LOSS for v in values])
    ax.bar_label(bars, labels=[f"{v:+.3f}" for v in values], padding=3, fontsize=7)
    ax.axvline(0, color="#333", linewidth=0.8)
    limit = max(abs(v) for v in values) or 1.0
    ax.set_xlim(-limit * 1.3, limit * 1.3)
    ax.set_xlabel(f"{metric}: {tuned} − {base}")
    ax.set_title(f"Change in {metric} per class")
    _note_cut(fig, len(shown), len(per_class), "classes (largest changes)")
    return _png(fig)


def group_bars(per_group: dict[str, dict[str, Any]], metric: str, title: str) -> bytes:
    """One bar per group (e.g. per demographic slice in a bias report), with the CI when "<metric>_ci" is given."""
    _require(per_group, "per_group")
    groups = list(per_group)[:MAX_LABELS]
    heights, errors, texts = zip(*(_bar_values(per_group[g], [metric]) for g in groups), strict=True)
    fig, ax = _figure(max(5.0, 0.5 * len(groups) + 2), 4.2)
    bars = ax.bar(range(len(groups)), [h[0] for h in heights], color=MODEL_COLORS[0],
                  yerr=np.hstack(errors), capsize=3, error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.bar_label(bars, labels=[t[0] for t in texts], padding=2, fontsize=7)
    ax.set_xticks(range(len(groups)))
    _rotate_ticks(ax, [str(g) for g in groups])
    ax.set_ylabel(f"{metric} (÷100)" if metric in HUNDRED_SCALE else metric)
    ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.08)
    ax.set_title(title)
    _note_cut(fig, len(groups), len(per_group), "groups")
    return _png(fig)


# ------------------------------------------------------------------------------------------------ matrix and curves


def confusion(matrix: list[list[int]], labels: list[str], title: str) -> bytes:
    """Annotated heatmap: rows are true labels, columns predictions; colour is the row share, text the count.

    Beyond MAX_LABELS classes only the most frequent true labels (rows and matching columns) are drawn.
    """
    counts = np.asarray(matrix, dtype=int)
    if counts.shape != (len(labels), len(labels)) or not labels:
        raise InputError(f"Confusion matrix has shape {counts.shape} but there are {len(labels)} labels.")
    keep = np.sort(np.argsort(-counts.sum(axis=1), kind="stable")[:MAX_LABELS])
    counts = counts[np.ix_(keep, keep)]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(keep)
    fig, ax = _figure(size + 1, size)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true label")
    fontsize = 9 if len(keep) <= 10 else 6
    for (row, col), count in np.ndenumerate(counts):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=fontsize,
                color="white" if shares[row, col] > 0.5 else "#222")
    names = [str(labels[i]) for i in keep]
    ax.set_xticks(range(len(names)))
    _rotate_ticks(ax, names)
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _note_cut(fig, len(keep), len(labels), "classes (most frequent)")
    return _png(fig)


_CURVE_AXES = {  # kind -> (x key, y key, x label, y label, area key shown in the legend)
    "roc": ("fpr", "tpr", "false positive rate", "true positive rate", "roc_auc"),
    "pr": ("recall", "precision", "recall", "precision", "average_precision"),
}


def curves(curves: dict[str, dict[str, Any]], kind: str) -> bytes:
    """ROC ("roc": fpr/tpr, with the chance diagonal) or precision-recall ("pr") curves, one line per model.

    Each model's dict is classification_metrics' "roc_curve" or "pr_curve"; adding its "roc_auc" or
    "average_precision" puts the area in the legend.
    """
    if kind not in _CURVE_AXES:
        raise InputError(f"Unknown curve kind '{kind}'.", f"Use one of: {', '.join(_CURVE_AXES)}.")
    _require(curves, "curves")
    x_key, y_key, x_label, y_label, area = _CURVE_AXES[kind]
    fig, ax = _figure(5.2, 4.6)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], linestyle="--", color="#bbb", linewidth=1, label="chance")
    for model, color in model_colors(list(curves)).items():
        curve = curves[model]
        label = f"{model} ({area.replace('_', ' ')} {curve[area]:.3f})" if area in curve else model
        ax.plot(curve[x_key], curve[y_key], color=color, linewidth=1.8, label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x_label, ylabel=y_label)
    ax.set_title("ROC curve" if kind == "roc" else "Precision-recall curve")
    ax.legend(frameon=False, fontsize=8, loc="lower right" if kind == "roc" else "lower left")
    return _png(fig)


def reliability(bins_by_model: dict[str, list[dict[str, float]]]) -> bytes:
    """Reliability diagram: accuracy against mean confidence per bin; points on the diagonal are calibrated.

    Each model's list is classification_metrics' reliability["bins"]; marker area grows with the bin's count.
    """
    _require(bins_by_model, "bins_by_model")
    fig, ax = _figure(5.2, 4.6)
    ax.plot([0, 1], [0, 1], linestyle="--", color="#bbb", linewidth=1, label="perfect calibration")
    for model, color in model_colors(list(bins_by_model)).items():
        bins = bins_by_model[model]
        total = sum(b["count"] for b in bins) or 1
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=color, linewidth=1.5,
                label=model)
        ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=color, zorder=3,
                   s=[15 + 200 * b["count"] / total for b in bins])
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence (top class)", ylabel="accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return _png(fig)
