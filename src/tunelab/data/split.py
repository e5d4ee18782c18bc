"""Splitting and the leakage check in `prepare`.

The split carves the missing splits (validation, test) out of train: seeded, stratified by label for
classification, and by whole groups when a group column is given, so one customer never straddles two splits.
The leakage check then removes from train every row whose input also appears, exactly or nearly, in validation,
test or a registered evaluation set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tunelab.data import minhash
from tunelab.data.frame import StepResult, input_expr, reasons
from tunelab.data.prep_config import LeakageConfig, SplitConfig


def _targets(present: set[str], cfg: SplitConfig) -> dict[str, float]:
    """Fractions of train to carve into each missing split."""
    return {s: f for s, f in (("test", cfg.test), ("validation", cfg.validation)) if s not in present and f > 0}


def split(df: pl.DataFrame, kind: str, cfg: SplitConfig) -> StepResult:
    present = set(df["_split"].unique().to_list())
    if "train" not in present:
        return StepResult(df, {"carved": {}, "note": "no train split to carve from"})
    targets = _targets(present, cfg)
    if not targets:
        return StepResult(df, {"carved": {}, "note": "the data came with all its splits"})
    train = df.filter(pl.col("_split") == "train")
    group = pl.col(cfg.group_column).fill_null("") if cfg.group_column else pl.col("_row").cast(pl.String)
    stratum = pl.col("label") if (kind == "classification" and cfg.stratify) else pl.lit("")
    groups = train.group_by(group.alias("_group")).agg(pl.len().alias("size"),
                                                       stratum.mode().sort().first().alias("_stratum"))
    groups = groups.sort("_group")
    assigned = _assign(groups, targets, cfg.seed)
    train = train.with_columns(group.alias("_group")).join(assigned, on="_group", how="left")
    train = train.with_columns(pl.col("_to").alias("_split")).drop("_group", "_to")
    out = pl.concat([df.filter(pl.col("_split") != "train"), train], how="vertical_relaxed").sort(["_src", "_row"])
    counts = dict(out.group_by("_split").len().iter_rows())
    stats: dict[str, Any] = {"carved": {s: counts.get(s, 0) for s in targets}, "seed": cfg.seed,
                             "stratified": kind == "classification" and cfg.stratify, "group_column": cfg.group_column}
    if cfg.group_column:
        stats["groups"] = groups.height
    return StepResult(out, stats)


def _assign(groups: pl.DataFrame, targets: dict[str, float], seed: int) -> pl.DataFrame:
    """Within each stratum, shuffle groups and fill each split up to its share of rows, in order."""
    rng = np.random.default_rng(seed)
    names, destinations = [], []
    for (_,), stratum in groups.group_by("_stratum", maintain_order=True):
        order = rng.permutation(stratum.height)
        sizes = stratum["size"].to_numpy()[order]
        before = np.cumsum(sizes) - sizes  # rows already placed when this group comes up
        total = sizes.sum()
        to = np.full(stratum.height, "train", dtype=object)
        bound = 0.0
        for split_name, fraction in targets.items():
            lower, bound = bound, bound + fraction * total
            to[(before >= round(lower)) & (before < round(bound))] = split_name
        names.append(stratum["_group"].to_numpy()[order])
        destinations.append(to)
    if not names:
        return pl.DataFrame({"_group": [], "_to": []}, schema={"_group": pl.String, "_to": pl.String})
    return pl.DataFrame({"_group": np.concatenate(names), "_to": np.concatenate(destinations).astype(str)})


def leakage(df: pl.DataFrame, kind: str, cfg: LeakageConfig, eval_inputs: dict[str, list[str]]) -> StepResult:
    """Remove train rows whose input matches a held-out row; `eval_inputs` maps eval-set id to its inputs."""
    keyed = df.with_columns(input_expr(kind).str.to_lowercase().alias("_input"))
    train = keyed.filter(pl.col("_split") == "train")
    held = keyed.filter(pl.col("_split") != "train")["_input"].to_list()
    reference = held + [t.lower() for texts in eval_inputs.values() for t in texts]
    exact_hit = train["_input"].is_in(reference)
    near_hit = np.zeros(train.height, dtype=bool)
    if cfg.near and reference:
        candidates = ~exact_hit.to_numpy()
        near_hit[candidates] = minhash.matches(minhash.signatures(train.filter(candidates)["_input"].to_arrow()),
                                               minhash.signatures(reference), cfg.threshold)
    train = train.with_columns(pl.Series("_exact", exact_hit.to_numpy()), pl.Series("_near", near_hit))
    removed = train.filter(pl.col("_exact") | pl.col("_near"))
    why = pl.when(pl.col("_exact")).then(pl.lit("leak: exact match of a held-out input")) \
        .otherwise(pl.lit("leak: near match of a held-out input"))
    val, test = (set(keyed.filter(pl.col("_split") == s)["_input"].to_list()) for s in ("validation", "test"))
    stats = {"exact": int(exact_hit.sum()), "near": int(near_hit.sum()), "against": sorted(eval_inputs),
             "validation_test_overlap": len(val & test)}
    kept = keyed.join(removed.select("_src", "_row", "_split"), on=["_src", "_row", "_split"], how="anti")
    return StepResult(kept.drop("_input").sort(["_src", "_row"]), stats, reasons(removed, why))
