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
