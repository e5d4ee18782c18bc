"""A dataset card: one self-contained HTML page that says where a version came from and what is in it.

Everything is inline (CSS, charts as base64 PNG) so the card can be mailed, attached to a review or opened
offline. Charts are drawn on bare `Figure` objects rather than through pyplot, so rendering a card never
changes the global matplotlib backend or rc settings that other modules rely on.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunelab.data.shapes import fields_of
from tunelab.html import data_uri, render
from tunelab.records import DatasetVersion

TEMPLATE = Path(__file__).parent / "templates" / "card.html"  # package data

SAMPLE_ROWS = 200_000  # rows per split the length histogram looks at: enough for its shape, fast at 1M rows
SEED = 0  # the same version always renders the same card
SHOWN_ROWS = 5
CELL_CHARS = 300
LIST_ITEMS = 10  # a step's "clusters" may have thousands of entries: show this many and the count
STAT_CHARS = 800
CHART_LABELS = 20  # labels drawn in the chart; the table below it lists more
TABLE_LABELS = 100
SPLIT_ORDER = ("train", "validation", "test")
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")
WORDS = r"\S+"  # counts words as str.split() does, without materialising the split
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#666666",
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6, "axes.axisbelow": True,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "legend.frameon": False,
}


def write_card(version: DatasetVersion, tables: dict[str, pa.Table], path: Path | None = None) -> Path:
    """Write card.html (default: Path(version.path) / "card.html") and return its path."""
    path = Path(path) if path is not None else Path(version.path) / "card.html"
    tables = {s: tables[s] for s in _ordered(tables)}
    created = version.created_at
    html = render(TEMPLATE, {"num": _num},
        v=version, created=created.isoformat(timespec="seconds") if hasattr(created, "isoformat") else created,
        charts=_charts(version, tables), splits=list(tables),
        steps=[_step_row(s) for s in version.steps], samples=_samples(tables, version.kind))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # readers never see a half-written card
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _charts(version: DatasetVersion, tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    """Length always; labels for classification, entity types for token classification; removals only when some
    step reports row counts."""
    colors = {s: COLORS[i % len(COLORS)] for i, s in enumerate(tables)}
    lengths = {s: _word_counts(t, version.kind) for s, t in tables.items()}
    charts = [{"title": "Length", "src": _length_chart(lengths, colors), "rows": _length_stats(lengths, tables),
               "caption": "Words per example (whitespace-separated, all text fields together); "
                          f"at most {SAMPLE_ROWS:,} sampled rows per split."}]
    if version.kind == "classification":
        labels = _label_counts(tables)
        charts.append({"title": "Labels", "src": _label_chart(labels, colors),
                       "labels": _label_rows(labels, list(tables)),
                       "caption": "Rows per label and split (all rows)."})
    if version.kind == "token_classification":
        types = _label_counts(tables, spans=True)
        charts.append({"title": "Entity types", "src": _label_chart(types, colors, "Entities per type", "entities"),
                       "labels": _label_rows(types, list(tables)),
                       "caption": "Entity spans per type and split (all rows)."})
    removed = _removed(version.steps)
    if removed:
        charts.append({"title": "What each step removed", "src": _steps_chart(removed),
                       "caption": "rows_in − rows_out for each preparation step."})
    return charts


def _ordered(tables: dict[str, Any]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in tables] + sorted(s for s in tables if s not in SPLIT_ORDER)


def _num(n: Any) -> Any:
    if isinstance(n, float):
        return f"{n:,.0f}" if n.is_integer() else f"{n:,.1f}"
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else n


# ---- numbers -------------------------------------------------------------------------------------------


def _word_counts(table: pa.Table, kind: str) -> np.ndarray:
    """len(example_text(row, kind).split()) for a seeded sample of rows, computed column-wise by polars.

    Summing the words of each field equals counting the words of the newline-joined example text.
    """
    wanted = {"chat": ("messages",), "classification": ("text",), "token_classification": ("text",)}.get(kind) \
        or fields_of(kind)  # labels and spans excluded
    fields = [f for f in wanted if f in table.column_names]
    if not fields or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=np.int64)
    table = table.select(fields)
    if table.num_rows > SAMPLE_ROWS:
        picked = np.random.default_rng(SEED).choice(table.num_rows, SAMPLE_ROWS, replace=False)
        table = table.take(pa.array(np.sort(picked)))
    if kind == "chat":
        expr = pl.col("messages").list.eval(pl.element().struct.field("content").str.count_matches(WORDS)).list.sum()
    else:
        expr = pl.sum_horizontal(pl.col(f).str.count_matches(WORDS).fill_null(0) for f in fields)
    frame = pl.from_arrow(table)
    return frame.select(expr.fill_null(0).cast(pl.Int64).alias("n"))["n"].to_numpy()


def _length_stats(lengths: dict[str, np.ndarray], tables: dict[str, pa.Table]) -> list[dict[str, Any]]:
    out = []
    for split, n in lengths.items():
        row: dict[str, Any] = {"split": split, "rows": tables[split].num_rows, "sampled": len(n)}
        if len(n):
            row |= {"min": int(n.min()), "median": float(np.median(n)), "mean": round(float(n.mean()), 1),
                    "p95": float(np.percentile(n, 95)), "max": int(n.max())}
        out.append(row)
    return out


def _label_counts(tables: dict[str, pa.Table], spans: bool = False) -> dict[str, dict[str, int]]:
    """Counts per label (or entity type, with `spans`) per split over all rows (a value count is cheap even at 1M
    rows), biggest first."""
    counts: dict[str, dict[str, int]] = {}
    column = "spans" if spans else "label"
    for split, table in tables.items():
        if column not in table.column_names:
            continue
        values = pc.struct_field(pc.list_flatten(table[column]), "label") if spans else table[column]
        for item in pc.value_counts(values).to_pylist():
            label = "(missing)" if item["values"] is None else str(item["values"])
            counts.setdefault(label, {})[split] = item["counts"]
    return dict(sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def _label_rows(labels: dict[str, dict[str, int]], splits: list[str]) -> dict[str, Any]:
    shown = list(labels.items())[:TABLE_LABELS]
    return {"rows": [(label, [by.get(s, 0) for s in splits]) for label, by in shown],
            "more": max(0, len(labels) - TABLE_LABELS)}


def _removed(steps: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(name, removed, rows_in) for the steps that report both counts; others say nothing about rows."""
    return [(str(s.get("name", "?")), s["rows_in"] - s["rows_out"], s["rows_in"]) for s in steps
            if isinstance(s.get("rows_in"), int) and isinstance(s.get("rows_out"), int)]


def _step_row(step: dict[str, Any]) -> dict[str, Any]:
    stats = {k: v for k, v in step.items() if k not in ("name", "rows_in", "rows_out")}
    rows_in, rows_out = step.get("rows_in"), step.get("rows_out")
    return {"name": step.get("name", "?"), "rows_in": rows_in, "rows_out": rows_out,
            "removed": rows_in - rows_out if isinstance(rows_in, int) and isinstance(rows_out, int) else None,
            "stats": [(k, _stat(v)) for k, v in stats.items()]}


def _stat(value: Any) -> dict[str, Any]:
    """Scalars as text; lists and dicts as compact JSON with long lists cut to their first items."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"code": False, "text": _clip(value if isinstance(value, str) else json.dumps(value), STAT_CHARS)}
    text = json.dumps(_compact(value), ensure_ascii=False, default=str, separators=(", ", ": "))
    return {"code": True, "text": _clip(text, STAT_CHARS)}


def _compact(value: Any, depth: int = 0) -> Any:
    """Only the first LIST_ITEMS of any list are visited, so a list of 100k clusters costs nothing."""
    if depth > 4:
        return "…"
    if isinstance(value, (list, tuple)):
        head = [_compact(v, depth + 1) for v in value[:LIST_ITEMS]]
        return head + ([f"… {len(value) - LIST_ITEMS:,} more ({len(value):,} in all)"]
                       if len(value) > LIST_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): _compact(v, depth + 1) for k, v in items[:2 * LIST_ITEMS]}
        if len(items) > 2 * LIST_ITEMS:
            out["…"] = f"{len(items) - 2 * LIST_ITEMS:,} more keys"
        return out
    return _clip(value, 120) if isinstance(value, str) else value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _samples(tables: dict[str, pa.Table], kind: str) -> list[dict[str, Any]]:
    """A few seeded random rows per split: the first rows often all come from one source file."""
    out = []
    for split, table in tables.items():
        n = min(SHOWN_ROWS, table.num_rows)
        picked = np.sort(np.random.default_rng(SEED).choice(table.num_rows, n, replace=False)) if n else []
        rows = table.take(pa.array(picked, type=pa.int64())).to_pylist()
        out.append({"split": split, "total": table.num_rows, "columns": table.column_names, "rows": [
            (int(i), [_cell(row[c]) for c in table.column_names]) for i, row in zip(picked, rows, strict=True)]})
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        value = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in value)
    return _clip(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False), CELL_CHARS)


# ---- charts --------------------------------------------------------------------------------------------


def _png(draw: Callable[[Axes], None], height: float = 3.2) -> str:
    """Render one chart to a data URI; constrained layout keeps rotated tick labels inside the image."""
    with rc_context(STYLE):
        fig = Figure(figsize=(6, height), dpi=100, layout="constrained")
        draw(fig.add_subplot())
        buf = io.BytesIO()
        fig.savefig(buf, format="png", facecolor="white")
    return data_uri(buf.getvalue())


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_axis_off()


def _length_chart(lengths: dict[str, np.ndarray], colors: dict[str, str]) -> str:
    """Share of rows (not counts) per bin, so a 5% test split is as visible as a 90% train split."""
    present = {s: n for s, n in lengths.items() if len(n)}

    def draw(ax: Axes) -> None:
        if not present:
            return _no_data(ax, "no rows")
        both = np.concatenate(list(present.values()))
        top = max(1, int(np.percentile(both, 99)))  # the long tail goes into the last bar
        bins = int(np.clip(2 * math.sqrt(min(map(len, present.values()))), 12, 40))  # fewer for tiny splits
        width = max(1, math.ceil((top + 1) / bins))
        edges = np.arange(0, top + width + 1, width) - 0.5  # integer counts sit inside their bar
        for split, n in present.items():
            clipped, weights = np.minimum(n, top), np.full(len(n), 100.0 / len(n))
            ax.hist(clipped, bins=edges, weights=weights, histtype="stepfilled", alpha=0.15, color=colors[split])
            ax.hist(clipped, bins=edges, weights=weights, histtype="step", linewidth=1.4, color=colors[split],
                    label=f"{split} (median {np.median(n):g})")
        tail = f"; last bar includes all ≥ {edges[-2] + 0.5:,.0f}" if both.max() > top else ""
        ax.set(title="Example length", xlabel=f"words per example{tail}", ylabel="% of rows",
               xlim=(edges[0], edges[-1]))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best")

    return _png(draw)


def _label_chart(labels: dict[str, dict[str, int]], colors: dict[str, str], title: str = "Rows per label",
                 unit: str = "rows") -> str:
    shown = list(labels.items())[:CHART_LABELS]
    splits = [s for s in colors if any(s in by for _, by in shown)]

    def draw(ax: Axes) -> None:
        if not shown:
            return _no_data(ax, "no labels")
        x, width = np.arange(len(shown)), 0.8 / max(1, len(splits))
        for i, split in enumerate(splits):
            bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, [by.get(split, 0) for _, by in shown],
                          width, label=split, color=colors[split])
            if len(shown) * len(splits) <= 24:  # more numbers than that would overlap; the table has them
                ax.bar_label(bars, labels=[f"{int(v):,}" for v in bars.datavalues], fontsize=7, padding=1)
        names = [_clip(label, 18) for label, _ in shown]
        slant = len(shown) > 5 or max(map(len, names)) > 8
        ax.set_xticks(x, names, rotation=(45 if len(shown) > 10 else 30) if slant else 0,
                      ha="right" if slant else "center", rotation_mode="anchor")
        ax.grid(axis="x", visible=False)
        ax.margins(y=0.15)
        more = f" (top {CHART_LABELS} of {len(labels)})" if len(labels) > CHART_LABELS else ""
        ax.set(title=f"{title}{more}", ylabel=unit)
        ax.legend(ncols=len(splits), loc="upper right")

    return _png(draw, height=3.2 if not len(shown) > 5 else 3.6)


def _steps_chart(removed: list[tuple[str, int, int]]) -> str:
    """Horizontal bars in step order, top to bottom, so long step names stay readable."""

    def draw(ax: Axes) -> None:
        y = np.arange(len(removed))
        values = [r for _, r, _ in removed]
        bars = ax.barh(y, values, color=["#C44E52" if r > 0 else "#8C8C8C" for r in values], height=0.6)
        ax.bar_label(bars, labels=[f"{r:,} ({100 * r / n:.1f}%)" if n else f"{r:,}" for _, r, n in removed],
                     fontsize=7, padding=3)
        ax.set_yticks(y, [_clip(name, 24) for name, _, _ in removed])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        low, high = min(0, *values), max(0, *values)
        span = (high - low) or 1
        ax.set_xlim(low - (0.3 * span if low < 0 else 0), high + 0.3 * span)
        ax.set(title="Rows removed per step", xlabel="rows removed (rows_in − rows_out)")

    return _png(draw, height=max(3.2, 0.32 * len(removed) + 1.2))
