"""The de-identification step of `prepare`: find personal data with Presidio, then redact, mask or drop the row.

The group column is pseudonymised instead (a keyed hash with a key that is never stored), so groups stay intact
for the split while the original identifiers disappear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter

import numpy as np
import polars as pl

from tunelab.data.frame import StepResult, flatten, reasons, text_columns, unflatten
from tunelab.data.pii import apply_pii, find_pii
from tunelab.data.prep_config import PiiConfig
from tunelab.progress import progress_bar


def deidentify(df: pl.DataFrame, kind: str, cfg: PiiConfig, group_column: str | None) -> StepResult:
    columns = [c for c in text_columns(df, kind) if c != group_column]
    flat = flatten(df, columns)
    texts = flat.texts.to_list()
    with progress_bar("finding personal data", len(texts)) as advance:
        spans = find_pii([t or "" for t in texts], entities=cfg.entities, use_ner=cfg.ner,
                         score_threshold=cfg.score_threshold, workers=cfg.workers, progress=advance)
    counts = Counter(span.entity for found in spans for span in found)
    has_pii = np.fromiter((bool(found) for found in spans), dtype=bool, count=len(spans))
    rows_with_pii = np.unique(flat.rows.to_numpy()[has_pii])
    stats = {"action": cfg.action, "ner": cfg.ner, "entities": dict(sorted(counts.items())),
             "values_found": sum(counts.values()), "rows_with_pii": int(rows_with_pii.size)}
    if cfg.action == "drop":
        flagged = pl.Series("_pii", np.isin(np.arange(df.height), rows_with_pii))
        marked = df.with_columns(flagged)
        out, dropped = marked.filter(~pl.col("_pii")).drop("_pii"), marked.filter(pl.col("_pii"))
        return StepResult(_pseudonymise(out, group_column), stats, reasons(dropped, "contains personal data"))
    redacted = [apply_pii(t, found, cfg.action) if found else t for t, found in zip(texts, spans, strict=True)]
    out = unflatten(df, flat, pl.Series(redacted, dtype=pl.String))
    return StepResult(_pseudonymise(out, group_column), stats)


def _pseudonymise(df: pl.DataFrame, column: str | None) -> pl.DataFrame:
    if not column or column not in df.columns:
        return df
    key = secrets.token_bytes(32)

    def digest(value: str) -> str:
        return "g-" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]

    return df.with_columns(pl.col(column).map_elements(digest, return_dtype=pl.String))
