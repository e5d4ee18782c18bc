"""The working frame of `prepare`: every split in one polars DataFrame, rows tagged with where they came from.

`_src` and `_row` name a row in the parent version (its split and index), so anything a step removes can be traced
back without copying its text; `_split` is the split the row is in now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from tunelab.data.shapes import FREE_TEXT, fields_of
from tunelab.data.versions import SPLITS, schema_for

META = ("_src", "_row", "_split")


def to_frame(tables: dict[str, pa.Table]) -> pl.DataFrame:
    frames = []
    for split, table in tables.items():
        frame = pl.from_arrow(table)
        frames.append(frame.with_columns(pl.lit(split).alias("_src"), pl.int_range(pl.len()).alias("_row"),
                                         pl.lit(split).alias("_split")))
    return pl.concat(frames, how="diagonal_relaxed")


def from_frame(df: pl.DataFrame, kind: str) -> dict[str, pa.Table]:
    columns = [c for c in df.columns if c not in META]
    schema = schema_for(kind, columns)
    present = set(df["_split"].unique().to_list())
    return {s: df.filter(pl.col("_split") == s).select(columns).to_arrow().cast(schema)
            for s in [*SPLITS, *sorted(present - set(SPLITS))] if s in present}


def text_columns(df: pl.DataFrame, kind: str, include_extras: bool = False) -> list[str]:
    """The shape's free-text fields present in `df`: what cleaning rewrites. Labels, spans and metadata are
    never rewritten unless asked: include_extras adds the other string columns."""
    fields = [c for c in FREE_TEXT[kind] if c in df.columns]
    if include_extras:
        fields += [c for c in df.columns if c not in fields and c not in META and c not in fields_of(kind)
                   and df.schema[c] == pl.String]
    return fields


def example_expr(kind: str) -> pl.Expr:
    """The whole example as one string: the key for duplicates (labels excluded, so conflicts show)."""
    if kind == "chat":
        return pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n")
    if kind in ("classification", "token_classification"):
        return pl.col("text")
    return pl.concat_str([pl.col(f) for f in fields_of(kind)], separator="\n", ignore_nulls=True)


def input_expr(kind: str) -> pl.Expr:
    """What the model reads: the key for leakage (an evaluation prompt seen in training)."""
    if kind == "chat":
        return pl.col("messages").list.eval(
            pl.element().filter(pl.element().struct.field("role") != "assistant").struct.field("content")
        ).list.join("\n")
    if kind == "instruction":
        return pl.concat_str([pl.col("instruction"), pl.col("input")], separator="\n", ignore_nulls=True)
    return pl.col("prompt") if kind == "completion" else pl.col("text")


@dataclass
class Flat:
    """All text values of some columns in one Series (chat contents included), and how to put them back."""

    texts: pl.Series
    rows: pl.Series  # the frame row each text belongs to
    parts: list[tuple[str, int]] = field(default_factory=list)  # (column, number of texts) in order


def flatten(df: pl.DataFrame, columns: list[str]) -> Flat:
    texts, rows, parts = [], [], []
    index = pl.int_range(pl.len(), dtype=pl.Int64).alias("_i")
    for column in columns:
        if column == "messages":
            exploded = df.select(index, pl.col("messages")).explode("messages")
            values, owners = exploded["messages"].struct.field("content"), exploded["_i"]
        else:
            values, owners = df[column], df.select(index)["_i"]
        texts.append(values.cast(pl.String))
        rows.append(owners)
        parts.append((column, len(values)))
    return Flat(pl.concat(texts) if texts else pl.Series([], dtype=pl.String),
                pl.concat(rows) if rows else pl.Series([], dtype=pl.Int64), parts)


def unflatten(df: pl.DataFrame, flat: Flat, texts: pl.Series) -> pl.DataFrame:
    offset, updates = 0, []
    for column, count in flat.parts:
        values = texts.slice(offset, count)
        if column == "messages":
            index = pl.int_range(pl.len(), dtype=pl.Int64).alias("_i")
            exploded = df.select(index, pl.col("messages")).explode("messages")
            rebuilt = exploded.select(
                "_i", pl.struct(exploded["messages"].struct.field("role"), values.alias("content")).alias("messages")
            ).group_by("_i", maintain_order=True).agg(pl.col("messages"))
            updates.append(rebuilt["messages"])
        else:
            updates.append(values.alias(column))
        offset += count
    return df.with_columns(updates) if updates else df


def map_texts(df: pl.DataFrame, columns: list[str], fn: Callable[[pl.Series], pl.Series]) -> pl.DataFrame:
    """Apply a Series -> Series function to every text value of `columns`, in one call."""
    flat = flatten(df, columns)
    return unflatten(df, flat, fn(flat.texts))


@dataclass
class StepResult:
    df: pl.DataFrame
    stats: dict[str, Any]
    reasons: pl.DataFrame | None = None  # _src, _row, reason for the rows this step removed


def reasons(df: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    value = pl.lit(reason) if isinstance(reason, str) else reason
    return df.select("_src", "_row", value.alias("reason"))
