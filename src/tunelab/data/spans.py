"""Entity spans of token-classification rows: checked at import, and kept true when `prepare` rewrites the text.

A row is `{"text", "spans": [{"start", "end", "label"}]}`: character offsets into the text, end exclusive, sorted by
start, never overlapping (nested entities are not supported). An empty list is a row without entities.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl

from tunelab.data.readers import Problem, json_type

SPANS_EXPECTED = "an array of {start, end, label} objects (an empty array for a row without entities)"
_OFFSET = "an integer character offset (0-based, end exclusive)"
_MARK = "\ue000"  # private use: marks span boundaries while a cleaning step rewrites the text


def _describe(value: Any) -> str:
    """'a string ("3")': the JSON type with its article and the value, for messages."""
    name = json_type(value)
    shown = json.dumps(value, default=str)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({shown})"


def check_spans(value: Any, text: str | None, problems: list[Problem]) -> list[dict[str, Any]]:
    """The record's spans, sorted, with a Problem added for each thing wrong (`text` None: the text was invalid,
    so offsets are not checked against it). A CSV cell may hold the spans as a JSON string."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(Problem("spans", f"invalid JSON ({exc.msg})", SPANS_EXPECTED))
            return []
    if not isinstance(value, list):
        problems.append(Problem("spans", "missing" if value is None else _describe(value), SPANS_EXPECTED))
        return []
    found = [(i, span) for i, item in enumerate(value)
             if (span := _span(item, f"spans[{i}]", text, problems)) is not None]
    found.sort(key=lambda pair: (pair[1]["start"], pair[1]["end"]))
    problems.extend(_overlaps(found))
    return [span for _, span in found]


def _span(item: Any, where: str, text: str | None, problems: list[Problem]) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        problems.append(Problem(where, _describe(item), "an object with start, end and label"))
        return None
    before = len(problems)
    start, end = _offset(item, "start", where, problems), _offset(item, "end", where, problems)
    label = _span_label(item, where, problems)
    if start is not None and start < 0:
        problems.append(Problem(f"{where}.start", f"{start} is negative", _OFFSET))
    if end is not None and text is not None and end > len(text):
        problems.append(Problem(f"{where}.end", f"{end} is past the end of the text ({len(text)} characters)",
                                "an offset within the text (end exclusive: at most its length)"))
    if start is not None and end is not None and start >= end:
        problems.append(Problem(where, f"start {start} is not before end {end}",
                                "start < end (end is exclusive: an entity has at least one character)"))
    if len(problems) == before and text is not None and "text" in item and item["text"] != text[start:end]:
        given, held = json.dumps(item["text"], default=str), json.dumps(text[start:end])
        problems.append(Problem(f"{where}.text", f"{given}, but the text at [{start}, {end}) is {held}",
                                "the characters at the offsets (or no text)"))
    return {"start": start, "end": end, "label": label} if len(problems) == before else None


def _offset(item: dict[str, Any], name: str, where: str, problems: list[Problem]) -> int | None:
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    problems.append(Problem(f"{where}.{name}", "missing" if value is None else _describe(value), _OFFSET))
    return None


def _span_label(item: dict[str, Any], where: str, problems: list[Problem]) -> str | None:
    value = item.get("label")
    if isinstance(value, str) and value.strip():
        return value
    what = "missing" if value is None else ("empty" if isinstance(value, str) else _describe(value))
    problems.append(Problem(f"{where}.label", what, "a non-empty string (the entity type)"))
    return None


def _overlaps(found: list[tuple[int, dict[str, Any]]]) -> list[Problem]:
    """One problem per span that starts before an earlier one (in text order) ends."""
    problems, reach = [], None  # reach: (index, span) of the span ending furthest to the right so far
    for index, span in found:
        if reach is not None and span["start"] < reach[1]["end"]:
            other = reach[1]
            problems.append(Problem(f"spans[{index}]", f"[{span['start']}, {span['end']}) {span['label']} overlaps "
                                    f"spans[{reach[0]}] [{other['start']}, {other['end']}) {other['label']}",
                                    "spans that do not overlap (nested entities are not supported)"))
        if reach is None or span["end"] > reach[1]["end"]:
            reach = (index, span)
    return problems


# --------------------------------------------------------------------------------------------- rewriting in prepare


def rewrite_spans(df: pl.DataFrame, fn: Callable[[pl.Series], pl.Series]) -> tuple[pl.DataFrame, dict[str, int]]:
    """`fn` applied to the text column, every span moved to where its characters went.

    Spans are first trimmed of whitespace at their edges (never part of an entity). Each span boundary then gets a
    marker character before `fn` runs, and where the markers come out are the new offsets. A row takes the new text
    only when that is provably right: removing the markers from its output gives exactly `fn(text)`, every marker
    came back, and every span kept a character. Otherwise (a boundary between a letter and its combining accent,
    inside an HTML tag that is stripped...) the row keeps its text and spans, and `rows_left_unchanged` counts it.
    """
    texts, spans = df["text"].to_list(), df["spans"].to_list()
    trimmed = [_trim(t or "", s or []) for t, s in zip(texts, spans, strict=True)]
    marked = [_mark(t or "", s) for t, s in zip(texts, trimmed, strict=True)]
    plain = fn(pl.Series(texts, dtype=pl.String)).to_list()
    rewritten = fn(pl.Series([m[0] for m in marked], dtype=pl.String)).to_list()
    out_texts, out_spans, unchanged = [], [], 0
    for i, text in enumerate(texts):
        moved = _unmark(rewritten[i], plain[i], marked[i][1], trimmed[i]) if plain[i] != text else trimmed[i]
        if moved is None:
            unchanged += 1
        out_texts.append(plain[i] if moved is not None else text)
        out_spans.append(moved if moved is not None else spans[i])
    stats = {"spans_trimmed": sum(a != b for a, b in zip(trimmed, spans, strict=True)),
             "rows_left_unchanged": unchanged}
    out = df.with_columns(pl.Series("text", out_texts, dtype=pl.String),
                          pl.Series("spans", out_spans, dtype=df.schema["spans"]))
    return out, stats


def _trim(text: str, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for span in spans:
        start, end = span["start"], span["end"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        out.append({**span, "start": start, "end": end} if start < end else span)
    return out


def _mark(text: str, spans: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """The text with a marker at each distinct span boundary, and those boundaries in order."""
    if _MARK in text:
        return text, []
    bounds = sorted({b for s in spans for b in (s["start"], s["end"])})
    pieces, last = [], 0
    for b in bounds:
        pieces += [text[last:b], _MARK]
        last = b
    return "".join(pieces) + text[last:], bounds


def _unmark(output: str, expected: str, bounds: list[int], spans: list[dict[str, Any]]) -> list[dict] | None:
    """The spans at the markers' places in `output`, or None when the rewrite cannot be trusted for this row."""
    if not spans:
        return []
    if not bounds:
        return None
    pieces = output.split(_MARK)
    if len(pieces) != len(bounds) + 1 or "".join(pieces) != expected:
        return None
    places, total = {}, 0
    for bound, piece in zip(bounds, pieces, strict=False):
        total += len(piece)
        places[bound] = total
    moved = [{**s, "start": places[s["start"]], "end": places[s["end"]]} for s in spans]
    return moved if all(s["start"] < s["end"] for s in moved) else None
