"""Cleaning steps of `prepare`: Unicode and whitespace normalisation, HTML stripping, missing values, length."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ftfy
import polars as pl

from tunelab.data.frame import StepResult, example_expr, map_texts, reasons, text_columns
from tunelab.data.prep_config import HtmlConfig, LengthConfig, MissingConfig, NormalizeConfig
from tunelab.data.shapes import REQUIRED
from tunelab.data.spans import rewrite_spans
from tunelab.errors import InputError

_FTFY = ftfy.TextFixerConfig(uncurl_quotes=False)  # repair mojibake, but keep the writer's typography
# A lead byte of a UTF-8 sequence followed by a continuation byte, both decoded as cp1252/latin-1 ("Ã©", "â€™").
_MOJIBAKE = ("[\u00c2-\u00ef][\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039"
             "\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178]")
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\ufeff]"
_SPACES = "\t\u00a0\u2000-\u200a\u3000"
_CLEANUPS = (  # (pattern, replacement) in order: line endings, invisible characters, spaces, blank lines
    (r"\r\n?", "\n"),
    (_CONTROL, ""),
    (f"[ {_SPACES}]{{2,}}|[{_SPACES}]", " "),
    (r" \n ?|\n ", "\n"),
    (r"\n{3,}", "\n\n"),
)


def normalize_series(texts: pl.Series, fix_mojibake: bool = True) -> pl.Series:
    """NFC, no control characters, single spaces, at most one blank line, no surrounding whitespace."""
    non_ascii = texts.str.contains(r"[^\x00-\x7f]").fill_null(False)
    if non_ascii.any():
        rows = non_ascii.arg_true()
        subset = texts.gather(rows)
        if fix_mojibake:  # ftfy is slow: only where UTF-8 read as cp1252/latin-1 leaves its signature
            suspicious = subset.str.contains(_MOJIBAKE).fill_null(False)
            if suspicious.any():
                fixed = subset.filter(suspicious).map_elements(lambda t: ftfy.fix_text(t, _FTFY),
                                                               return_dtype=pl.String)
                subset = subset.scatter(suspicious.arg_true(), fixed)
        texts = texts.scatter(rows, subset.str.normalize("NFC"))
    for pattern, replacement in _CLEANUPS:  # most rows need none of these: rewrite only those that do
        hit = texts.str.contains(pattern).fill_null(False)
        if hit.any():
            texts = texts.scatter(hit.arg_true(), texts.filter(hit).str.replace_all(pattern, replacement))
    return texts.str.strip_chars()


def normalize(df: pl.DataFrame, kind: str, cfg: NormalizeConfig) -> StepResult:
    columns = text_columns(df, kind)
    before = df.select(example_expr(kind).alias("k"))["k"]
    out, spans = _rewrite(df, kind, columns, lambda s: normalize_series(s, cfg.fix_mojibake))
    after = out.select(example_expr(kind).alias("k"))["k"]
    return StepResult(out, {"rows_changed": int((before != after).fill_null(False).sum()), "columns": columns,
                            **spans})


def _rewrite(df: pl.DataFrame, kind: str, columns: list[str], fn: Callable[[pl.Series], pl.Series]
             ) -> tuple[pl.DataFrame, dict[str, int]]:
    """map_texts, except that a token-classification text is rewritten with its spans moved along (or, where that
    cannot be done exactly, left as it is and counted): offsets into the old text would point at other characters."""
    if kind != "token_classification" or "text" not in columns:
        return map_texts(df, columns, fn), {}
    return rewrite_spans(map_texts(df, [c for c in columns if c not in ("text", "spans")], fn), fn)


def _strip_tags(texts: pl.Series) -> pl.Series:
    from selectolax.lexbor import LexborHTMLParser

    has_tag = texts.str.contains(r"<[A-Za-z/!][^>]*>|&[a-z]+;|&#\d+;").fill_null(False)
    if not has_tag.any():
        return texts
    stripped = texts.filter(has_tag).map_elements(
        lambda t: LexborHTMLParser(t).text(separator=" ", strip=True) if t else t, return_dtype=pl.String)
    return normalize_series(texts.scatter(has_tag.arg_true(), stripped), fix_mojibake=False)


def strip_html(df: pl.DataFrame, kind: str, _cfg: HtmlConfig) -> StepResult:
    columns = text_columns(df, kind)
    before = df.select(example_expr(kind).alias("k"))["k"]
    out, spans = _rewrite(df, kind, columns, _strip_tags)
    after = out.select(example_expr(kind).alias("k"))["k"]
    return StepResult(out, {"rows_changed": int((before != after).fill_null(False).sum()), **spans})


def _empty(column: str, dtype: pl.DataType) -> pl.Expr:
    if column == "messages":
        return pl.col(column).list.eval(pl.element().struct.field("content").str.len_chars() == 0).list.any()
    if isinstance(dtype, pl.List):  # token classification spans: an empty list is a row without entities
        return pl.col(column).is_null()
    return pl.col(column).is_null() | (pl.col(column).cast(pl.String).str.strip_chars() == "")


def missing_values(df: pl.DataFrame, kind: str, cfg: MissingConfig, group_column: str | None) -> StepResult:
    columns = cfg.columns or [*REQUIRED[kind], *([group_column] if group_column else [])]
    counts = {c: int(df.select(_empty(c, df.schema[c]).sum()).item()) for c in columns}
    stats: dict[str, Any] = {"policy": cfg.policy, "empty": counts}
    if cfg.policy == "fill":
        if "messages" in columns:
            raise InputError("missing.policy fill cannot fill chat messages", "use policy: drop for chat data")
        fills = [pl.when(_empty(c, df.schema[c])).then(pl.lit(cfg.fill_value)).otherwise(pl.col(c)).alias(c)
                 for c in columns if df.schema[c] == pl.String]  # spans are never empty after import
        return StepResult(df.with_columns(fills), stats | {"filled": sum(counts.values())})
    empty = pl.any_horizontal([_empty(c, df.schema[c]) for c in columns]) if columns else pl.lit(False)
    return StepResult(df.filter(~empty), stats, reasons(df.filter(empty), "an empty required field"))


def _token_counts(texts: pl.Series, tokenizer_name: str) -> pl.Series:
    if tokenizer_name == "whitespace":
        return texts.str.count_matches(r"\S+")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    except Exception as exc:
        raise InputError(f"length.tokenizer {tokenizer_name!r} cannot be loaded ({type(exc).__name__})",
                         "use 'whitespace', a local tokenizer folder, or a hub name where a hub is reachable") from exc
    counts: list[int] = []
    values = texts.to_list()
    for start in range(0, len(values), 10_000):
        batch = tokenizer(values[start: start + 10_000], add_special_tokens=False)["input_ids"]
        counts.extend(len(ids) for ids in batch)
    return pl.Series(counts, dtype=pl.Int64)


def length_filter(df: pl.DataFrame, kind: str, cfg: LengthConfig) -> StepResult:
    counts = _token_counts(df.select(example_expr(kind).alias("k"))["k"], cfg.tokenizer)
    too_short = counts < cfg.min_tokens
    too_long = counts > cfg.max_tokens if cfg.max_tokens else pl.Series([False] * len(counts))
    flagged = df.with_columns(pl.when(too_short).then(pl.lit(f"shorter than {cfg.min_tokens} tokens"))
                              .when(too_long).then(pl.lit(f"longer than {cfg.max_tokens} tokens"))
                              .otherwise(None).alias("_why"))
    dropped = flagged.filter(pl.col("_why").is_not_null())
    stats = {"tokenizer": cfg.tokenizer, "too_short": int(too_short.sum()), "too_long": int(too_long.sum()),
             "tokens": {"min": int(counts.min() or 0), "median": float(counts.median() or 0),
                        "max": int(counts.max() or 0)}}
    return StepResult(flagged.filter(pl.col("_why").is_null()).drop("_why"), stats, reasons(dropped, pl.col("_why")))
