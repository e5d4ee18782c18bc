"""The de-identification step of `prepare`: find personal data, then redact, mask or drop the row.

Only the free text of the shape is read and rewritten (chat contents, instruction/input/output, prompt/completion,
text), plus the columns `pii.columns` names: never a label, a group column or other metadata. A value found in
one field of a record is treated the same wherever it recurs in that record (`pii_rules.propagate`). Columns in
`pii.pseudonymize` are replaced by a keyed hash (a key that is never stored), which keeps groups intact for the
split while the original identifiers disappear. Token-classification spans are moved with the text they annotate.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter, defaultdict

import numpy as np
import polars as pl

from tunelab.data.frame import StepResult, flatten, reasons, unflatten
from tunelab.data.pii import apply_pii, find_pii
from tunelab.data.pii_recognizers import KEEPS_COARSE, PROFILES
from tunelab.data.pii_rules import PiiSpan, Rules, propagate, remap_offset
from tunelab.data.prep_config import PiiConfig
from tunelab.data.shapes import FREE_TEXT
from tunelab.progress import progress_bar


def pii_columns(df: pl.DataFrame, kind: str, cfg: PiiConfig) -> list[str]:
    """The columns de-identification reads: the shape's free-text fields and those the config names."""
    return [c for c in dict.fromkeys([*FREE_TEXT[kind], *cfg.columns]) if c in df.columns]


def deidentify(df: pl.DataFrame, kind: str, cfg: PiiConfig) -> StepResult:
    columns = pii_columns(df, kind, cfg)
    flat = flatten(df, columns)
    texts = [t or "" for t in flat.texts.to_list()]
    entities = cfg.entities if cfg.entities is not None else list(PROFILES[cfg.profile])
    rules = Rules(tuple(cfg.allow), tuple(cfg.deny), cfg.profile in KEEPS_COARSE)
    with progress_bar("finding personal data", len(texts)) as advance:
        spans = find_pii(texts, entities=entities, use_ner=cfg.ner, score_threshold=cfg.score_threshold,
                         workers=cfg.workers, progress=advance, rules=rules, ner_engine=cfg.engine)
    found_first = sum(len(s) for s in spans)
    spans = _same_value_same_treatment(texts, flat.rows.to_list(), spans)
    counts = Counter(span.entity for found in spans for span in found)
    has_pii = np.fromiter((bool(found) for found in spans), dtype=bool, count=len(spans))
    rows_with_pii = np.unique(flat.rows.to_numpy()[has_pii])
    stats = {"action": cfg.action, "profile": cfg.profile, "ner": cfg.engine if cfg.ner else False, "columns": columns,
             "entities": dict(sorted(counts.items())), "values_found": sum(counts.values()),
             "values_propagated": sum(counts.values()) - found_first, "rows_with_pii": int(rows_with_pii.size)}
    if cfg.action == "drop":
        flagged = pl.Series("_pii", np.isin(np.arange(df.height), rows_with_pii))
        marked = df.with_columns(flagged)
        out, dropped = marked.filter(~pl.col("_pii")).drop("_pii"), marked.filter(pl.col("_pii"))
        return StepResult(_pseudonymise(out, cfg.pseudonymize), stats, reasons(dropped, "contains personal data"))
    redacted = [apply_pii(t, found, cfg.action) if found else t for t, found in zip(texts, spans, strict=True)]
    out = unflatten(df, flat, pl.Series(redacted, dtype=pl.String))
    if kind == "token_classification" and cfg.action == "redact" and "spans" in out.columns:
        out = _move_annotations(out, spans[:df.height])
    return StepResult(_pseudonymise(out, cfg.pseudonymize), stats)


def _same_value_same_treatment(texts: list[str], rows: list[int], spans: list[list[PiiSpan]]) -> list[list[PiiSpan]]:
    """Within each record of several texts where something was found, redact every recurrence of each value."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        members[row].append(index)
    spans = list(spans)
    for indices in members.values():
        if len(indices) > 1 and any(spans[i] for i in indices):
            for i, found in zip(indices, propagate([texts[i] for i in indices], [spans[i] for i in indices]),
                                strict=True):
                spans[i] = found
    return spans


def _move_annotations(df: pl.DataFrame, spans: list[list[PiiSpan]]) -> pl.DataFrame:
    """Shift the entity offsets of a token-classification row through the redactions made in its text (the text
    column comes first in the flattened order, one value per row)."""
    moved = []
    for entities, found in zip(df["spans"].to_list(), spans, strict=True):
        edits = [(s.start, s.end, len(s.entity) + 2) for s in found]
        moved.append([{**a, "start": remap_offset(a["start"], edits, "start"),
                       "end": remap_offset(a["end"], edits, "end")} for a in entities or []])
    return df.with_columns(pl.Series("spans", moved, dtype=df.schema["spans"]))


def _pseudonymise(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    key = secrets.token_bytes(32)

    def digest(value: str) -> str:
        return "g-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]

    present = [c for c in columns if c in df.columns]
    return df.with_columns([pl.col(c).cast(pl.String).map_elements(digest, return_dtype=pl.String)
                            for c in present]) if present else df
