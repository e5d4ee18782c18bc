"""Toy data for the training tests: small, learnable, deterministic."""

from __future__ import annotations

import random

INTENT_WORDS = ("order account help please thanks today my the a to of and for with is can you me").split()  # noqa: SIM905


def intent_rows(n: int, words: tuple[int, int] = (5, 5), seed: int = 0) -> list[dict]:
    """A learnable toy classification task: the label word is hidden among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ["refund", "track"][i % 2]
        text = [rng.choice(INTENT_WORDS) for _ in range(rng.randint(*words))] + [label, str(i)]
        rng.shuffle(text)
        rows.append({"text": " ".join(text), "label": label})
    return rows


ENTITY_WORDS = {"item": ("package", "invoice", "card", "subscription", "phone number"),
                "day": ("today", "tomorrow", "this week", "this month")}


def entity_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable toy tagging task: one or two entities (items, days; some two words long) among filler words,
    with their character spans."""
    rng = random.Random(seed)
    taken = {w for values in ENTITY_WORDS.values() for v in values for w in v.split()}
    filler = [w for w in INTENT_WORDS if w not in taken]
    rows = []
    for i in range(n):
        words: list[tuple[str, str | None]] = [(rng.choice(filler), None) for _ in range(rng.randint(3, 6))]
        for label in rng.sample(sorted(ENTITY_WORDS), rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words)), (rng.choice(ENTITY_WORDS[label]), label))
        words.append((str(i), None))
        text, spans = "", []
        for word, label in words:
            text += (" " if text else "")
            if label:
                spans.append({"start": len(text), "end": len(text) + len(word), "label": label})
            text += word
        rows.append({"text": text, "spans": spans})
    return rows
