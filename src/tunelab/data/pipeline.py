"""`tunelab data prepare`: a new dataset version made from a parent through named steps, each with statistics.

Steps, in order: normalize, html, missing, dedup_exact, dedup_near, length, pii, split, leakage. Rows a step
removes are listed in `dropped.jsonl` by their place in the parent version and a reason, never by their text, so
the prepared version holds no original personal data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from tunelab.data import clean, dedup, split
from tunelab.data.frame import StepResult, from_frame, input_expr, to_frame
from tunelab.data.pii import ENTITY_TYPES
from tunelab.data.pii_rules import Rules
from tunelab.data.prep_config import PrepConfig
from tunelab.data.versions import VersionWriter, read_splits
from tunelab.errors import InputError
from tunelab.progress import say
from tunelab.records import DatasetVersion
from tunelab.store import Store

Step = Callable[[pl.DataFrame], StepResult]


def plan(cfg: PrepConfig, kind: str, eval_inputs: dict[str, list[str]]) -> list[tuple[str, Step]]:
    """The steps the config turns on, in order, each bound to its settings."""
    group = cfg.split.group_column if cfg.split.enabled else None
    steps: list[tuple[str, Step]] = []
    if cfg.normalize.enabled:
        steps.append(("normalize", lambda df: clean.normalize(df, kind, cfg.normalize)))
    if cfg.html.enabled:
        steps.append(("html", lambda df: clean.strip_html(df, kind, cfg.html)))
    steps.append(("missing", lambda df: clean.missing_values(df, kind, cfg.missing, group)))
    if cfg.dedup.exact:
        steps.append(("dedup_exact", lambda df: dedup.exact(df, kind, cfg.dedup)))
    if cfg.dedup.near:
        steps.append(("dedup_near", lambda df: dedup.near(df, kind, cfg.dedup)))
    if cfg.length.enabled:
        steps.append(("length", lambda df: clean.length_filter(df, kind, cfg.length)))
    if cfg.pii.enabled:
        from tunelab.data.deid import deidentify

        steps.append(("pii", lambda df: deidentify(df, kind, cfg.pii)))
    if cfg.split.enabled:
        steps.append(("split", lambda df: split.split(df, kind, cfg.split)))
    if cfg.leakage.enabled:
        steps.append(("leakage", lambda df: split.leakage(df, kind, cfg.leakage, eval_inputs)))
    return steps


def _eval_inputs(store: Store, parent: DatasetVersion, cfg: PrepConfig) -> dict[str, list[str]]:
    """Inputs of every evaluation set of the same shape (registered ones and `leakage.against`)."""
    sets = {v.id: v for v in store.eval_sets() if v.id != parent.id}
    for ref in cfg.leakage.against:
        version = store.get_dataset(ref)
        sets[version.id] = version
    inputs = {}
    for version_id, version in sets.items():
        if version.kind != parent.kind:
            if version_id in cfg.leakage.against:
                raise InputError(f"leakage.against {version_id} is a {version.kind} dataset; this one is {parent.kind}")
            continue
        frame = pl.concat([pl.from_arrow(t) for t in read_splits(version).values()], how="diagonal_relaxed")
        inputs[version_id] = frame.select(input_expr(version.kind))[:, 0].to_list()
    return inputs


def check(cfg: PrepConfig, parent: DatasetVersion) -> None:
    """Every problem of the config against this dataset, reported at once before any work starts."""
    problems = []
    columns = parent.columns
    named = {"split.group_column": [cfg.split.group_column] if cfg.split.group_column else [],
             "missing.columns": cfg.missing.columns or [], "pii.columns": cfg.pii.columns,
             "pii.pseudonymize": cfg.pii.pseudonymize}
    for key, wanted in named.items():
        missing = [c for c in wanted if c not in columns]
        if missing:
            problems.append(f"{key}: {', '.join(missing)} is not a column of {parent.id}")
    if cfg.split.enabled and cfg.split.validation + cfg.split.test >= 1:
        problems.append("split.validation + split.test must leave rows for train (be below 1)")
    if cfg.missing.policy == "fill" and cfg.missing.fill_value is None:
        problems.append("missing.policy is fill but missing.fill_value is not set")
    unknown = sorted(set(cfg.pii.entities or ()) - set(ENTITY_TYPES))
    if unknown:
        problems.append(f"pii.entities: unknown type(s) {', '.join(unknown)}")
    labels = [c for c in cfg.pii.columns if c in ("label", "spans")]
    if labels:
        problems.append(f"pii.columns: {', '.join(labels)} holds annotations, which de-identification never rewrites")
    try:
        Rules(tuple(cfg.pii.allow), tuple(cfg.pii.deny))
    except InputError as exc:
        problems.append(exc.message)
    if problems:
        raise InputError("the config does not fit this dataset:\n" + "\n".join(f"  {p}" for p in problems),
                         f"its columns are: {', '.join(columns)}; known PII types: {', '.join(ENTITY_TYPES)}")


def prepare(store: Store, ref: str, cfg: PrepConfig | None = None) -> DatasetVersion:
    """Run the configured steps on dataset `ref` and register the result as a new version."""
    cfg = cfg or PrepConfig()
    parent = store.get_dataset(ref)
    check(cfg, parent)
    if parent.pii_redacted and cfg.pii.enabled:
        say(f"note: {parent.id} was already de-identified; detecting again")
    eval_inputs = _eval_inputs(store, parent, cfg) if cfg.leakage.enabled else {}
    df = to_frame(read_splits(parent))
    steps_out: list[dict[str, Any]] = []
    dropped: list[pl.DataFrame] = []
    for name, step in plan(cfg, parent.kind, eval_inputs):
        started, rows_in = time.perf_counter(), df.height
        result = step(df)
        df = result.df
        if result.reasons is not None and result.reasons.height:
            dropped.append(result.reasons.with_columns(pl.lit(name).alias("step")))
        steps_out.append({"name": name, "rows_in": rows_in, "rows_out": df.height, **result.stats,
                          "seconds": round(time.perf_counter() - started, 3)})
        say(f"  {name}: {rows_in:,} -> {df.height:,} rows")
    if df.height == 0:
        raise InputError(f"preparing {parent.id} removed every row", "check the steps' statistics in --json output "
                         "and loosen the config (e.g. dedup.threshold, length.max_tokens)")
    return _commit(store, parent, cfg, df, steps_out, dropped)


def _commit(store: Store, parent: DatasetVersion, cfg: PrepConfig, df: pl.DataFrame,
            steps: list[dict[str, Any]], dropped: list[pl.DataFrame]) -> DatasetVersion:
    writer = VersionWriter(store)
    try:
        dropped_path: Path | None = None
        removed = pl.concat(dropped) if dropped else None
        if removed is not None:
            dropped_path = writer.file("dropped.jsonl")
            with dropped_path.open("w", encoding="utf-8") as f:
                for row in removed.rename({"_src": "split", "_row": "row"}).iter_rows(named=True):
                    f.write(json.dumps(row) + "\n")
        config = cfg.model_dump(mode="json")
        version = writer.commit(
            name=cfg.name or parent.name, kind=parent.kind, tables=from_frame(df, parent.kind), parent_id=parent.id,
            identity={"config": config}, sources=parent.sources, steps=steps, config=config,
            rejected=removed.height if removed is not None else 0,
            rejects_path=str(dropped_path) if dropped_path else None,
            pii_redacted=cfg.pii.enabled or parent.pii_redacted)
    except BaseException:
        writer.discard()
        raise
    store.audit("data.prepare", version.id, {"parent": parent.id, "rows": version.rows, "splits": version.splits})
    return version
