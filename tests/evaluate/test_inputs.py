"""What an evaluation scores: `--limit` is a seeded sample of the split, not its first rows."""

from __future__ import annotations

import pyarrow as pa

from tunelab.evaluate.inputs import eval_set


def test_limit_samples_a_sorted_split_the_same_way_every_time():
    labels = [f"intent_{i // 10:02d}" for i in range(270)]  # 27 intents of 10 rows, sorted as files often are
    table = pa.table({"text": [f"query {i}" for i in range(270)], "label": labels})
    first = eval_set(table, "classification", limit=24)
    again = eval_set(table, "classification", limit=24)
    assert first.inputs == again.inputs and len(first) == 24
    assert len(set(first.references)) > 10  # the first 24 rows would hold 3 intents
    rows = [int(t.split()[1]) for t in first.inputs]
    assert rows == sorted(rows)  # split order kept
    assert len(eval_set(table, "classification", limit=500)) == 270
