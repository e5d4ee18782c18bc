"""Duplicate removal in `prepare`: exact (after normalisation) and near (MinHash LSH), one row kept per cluster.

The kept row is the one from the most precious split (test, then validation, then train), so evaluation data stays
whole. For classification, a cluster whose rows carry different labels is a conflict, resolved by policy; for token
classification, one whose rows carry different spans.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from tunelab.data import minhash
from tunelab.data.frame import StepResult, example_expr
from tunelab.data.prep_config import DedupConfig

_PRIORITY = {"test": 0, "validation": 1, "train": 2}
_SHOWN = 20
_NOUN = {"token_classification": "spans"}  # what conflicting duplicates disagree on


def _row_id() -> pl.Expr:
    return pl.concat_str([pl.col("_src"), pl.col("_row").cast(pl.String)], separator=":")


def _annotation(kind: str, what: str) -> pl.Expr | None:
    """What duplicates must agree on: the label, or every span (as one string) of a token-classification row; near
    duplicates differ in their text, so their offsets differ too, and only exact ones compare spans."""
    if kind == "classification":
        return pl.col("label")
    if kind == "token_classification" and what == "exact":
        span = pl.concat_str([pl.element().struct.field(f).cast(pl.String) for f in ("start", "end", "label")],
                             separator=":")
        return pl.col("spans").list.eval(span).list.join(" ")
    return None


def resolve_clusters(df: pl.DataFrame, kind: str, conflicts: str, what: str) -> StepResult:
    """Keep one row per `_cluster` (null = a row without duplicates); remove the rest with a reason."""
    in_cluster = pl.col("_cluster").is_not_null()
    ranked = df.with_columns(pl.col("_src").replace_strict(_PRIORITY, default=3).alias("_prio"), _row_id().alias("_id"))
    ranked = ranked.sort(["_prio", "_src", "_row"])
    eligible = pl.lit(True)
    annotation = _annotation(kind, what)
    if annotation is not None:
        ranked = ranked.with_columns(annotation.alias("_annotation"))
        several = pl.col("_annotation").n_unique().over("_cluster") > 1
        ranked = ranked.with_columns((in_cluster & several).alias("_conflict"))
        if conflicts == "drop":
            eligible = ~pl.col("_conflict")
        elif conflicts == "majority":
            majority = pl.col("_annotation").mode().sort().first().over("_cluster")
            eligible = ~pl.col("_conflict") | (pl.col("_annotation") == majority)
    else:
        ranked = ranked.with_columns(pl.lit(False).alias("_conflict"))
    ranked = ranked.with_columns(eligible.alias("_eligible"))
    first = pl.col("_eligible") & (pl.col("_eligible").cast(pl.Int64).cum_sum().over("_cluster") == 1)
    ranked = ranked.with_columns((~in_cluster | first).alias("_keep"))
    ranked = ranked.with_columns(pl.col("_id").filter(pl.col("_keep")).first().over("_cluster").alias("_kept_id"))
    removed = ranked.filter(~pl.col("_keep"))
    why = (pl.when(pl.col("_conflict") & pl.col("_kept_id").is_null())
           .then(pl.lit(f"{what} duplicates with conflicting {_NOUN.get(kind, 'labels')}"))
           .otherwise(pl.concat_str([pl.lit(f"{what} duplicate of "), pl.col("_kept_id").fill_null("?")])))
    stats = _cluster_stats(ranked.filter(in_cluster), kind)
    kept = ranked.filter(pl.col("_keep")).sort(["_src", "_row"])
    helper = ["_prio", "_id", "_conflict", "_eligible", "_keep", "_kept_id", "_cluster"]
    return StepResult(kept.drop(helper, "_annotation", strict=False), {"removed": removed.height, **stats},
                      removed.select("_src", "_row", why.alias("reason")))


def _cluster_stats(members: pl.DataFrame, kind: str) -> dict[str, Any]:
    """Counts, and the largest clusters by row id (ids only: the texts may hold personal data)."""
    aggregations = [pl.len().alias("size"), pl.col("_id").filter(pl.col("_keep")).first().alias("kept"),
                    pl.col("_id").filter(~pl.col("_keep")).head(10).alias("removed"),
                    pl.col("_conflict").first().alias("conflict")]
    if kind == "classification":
        aggregations.append(pl.col("label").unique().sort().alias("labels"))
    groups = members.group_by("_cluster").agg(aggregations).sort(["size", "_cluster"], descending=[True, False])
    stats: dict[str, Any] = {"clusters": groups.height,
                             "largest_clusters": groups.head(_SHOWN).drop("_cluster").to_dicts()}
    if "_annotation" in members.columns:
        conflicting = groups.filter(pl.col("conflict"))
        stats["conflicting_clusters"] = conflicting.height
        stats["conflict_examples"] = conflicting.head(_SHOWN).drop("_cluster").to_dicts()
    return stats


def exact(df: pl.DataFrame, kind: str, cfg: DedupConfig) -> StepResult:
    keyed = df.with_columns(example_expr(kind).alias("_key"))
    keyed = keyed.with_columns(pl.when(pl.len().over("_key") > 1).then(pl.col("_key").hash()).alias("_cluster"))
    return resolve_clusters(keyed.drop("_key"), kind, cfg.conflicts, "exact")


def near(df: pl.DataFrame, kind: str, cfg: DedupConfig) -> StepResult:
    keys = df.select(example_expr(kind).alias("k"))["k"].to_arrow()
    groups = minhash.clusters(minhash.signatures(keys, cfg.num_perm), cfg.threshold)
    cluster = np.full(df.height, -1, dtype=np.int64)
    for number, members in enumerate(groups):
        cluster[members] = number
    labelled = df.with_columns(pl.Series("_cluster", cluster).replace(-1, None))
    result = resolve_clusters(labelled, kind, cfg.conflicts, "near")
    result.stats["threshold"] = cfg.threshold
    return result
