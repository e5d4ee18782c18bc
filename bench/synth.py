"""Synthetic short-text data for the benchmarks: SMS-like rows with controlled duplicates."""

from __future__ import annotations

import json
import random
from pathlib import Path

_SMS = Path(__file__).resolve().parents[1] / "examples" / "sms_spam" / "SMSSpamCollection"


def short_rows(n: int, seed: int = 0, duplicate_share: float = 0.1) -> list[dict[str, str]]:
    """`n` classification rows of 5-30 words drawn from the SMS vocabulary; ~`duplicate_share` exact repeats."""
    rng = random.Random(seed)
    lines = _SMS.read_text(encoding="utf-8").splitlines()[1:]
    words = [w for line in lines for w in line.split("\t", 1)[1].split()]
    rows: list[dict[str, str]] = []
    for i in range(n):
        if rows and rng.random() < duplicate_share:
            rows.append(dict(rows[rng.randrange(len(rows))]))
            continue
        text = " ".join(rng.choices(words, k=rng.randint(5, 30)))
        rows.append({"text": text, "label": "spam" if i % 7 == 0 else "ham"})
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
