"""BIO tags: which strings are tags, the tag set of some entity types, and tag sequences read back as entities.

One reading everywhere (CoNLL import, training validation, evaluation, serving): `B-X` starts an entity of type X;
`I-X` continues an entity of type X and, after `O` or after another type, starts one (as seqeval's default mode and
IOB1 read it), so IOB1, IOB2 and BIO files all import, and a model that predicts `I-X` first still names the entity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

OUTSIDE = "O"
_TAG = re.compile(r"[BI]-\S+")


def is_tag(tag: str) -> bool:
    """O, B-TYPE or I-TYPE (the type may hold dashes: B-date-time)."""
    return tag == OUTSIDE or _TAG.fullmatch(tag) is not None


def tag_names(types: Iterable[str]) -> list[str]:
    """O, then B- and I- of every type in sorted order: the same types always give the same tag ids."""
    return [OUTSIDE, *(f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in "BI")]


def entities(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first, end, type) of every entity in a tag sequence, end exclusive, in order."""
    out: list[tuple[int, int, str]] = []
    current: list | None = None  # [first, end, type] of the entity being read
    for i, tag in enumerate(tags):
        kind = tag[2:]
        if tag.startswith("I-") and current is not None and current[2] == kind:
            current[1] = i + 1
            continue
        if current is not None:
            out.append((current[0], current[1], current[2]))
            current = None
        if tag != OUTSIDE:
            current = [i, i + 1, kind]
    if current is not None:
        out.append((current[0], current[1], current[2]))
    return out


def strict_counts(gold: Iterable[tuple], predicted: Iterable[tuple]) -> dict[str, list[int]]:
    """{type: [true positives, false positives, false negatives]} of one example, entities as (start, end, type):
    a prediction counts only when its type and both boundaries equal a gold entity's (seqeval's strict match)."""
    gold, predicted = set(gold), set(predicted)
    counts: dict[str, list[int]] = {}
    for entity in gold | predicted:
        slot = 0 if entity in gold and entity in predicted else (1 if entity in predicted else 2)
        counts.setdefault(entity[2], [0, 0, 0])[slot] += 1
    return counts


def f1(tp: int, fp: int, fn: int) -> float:
    """2PR / (P + R) = 2tp / (2tp + fp + fn); 0 when there is nothing to find and nothing found."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
