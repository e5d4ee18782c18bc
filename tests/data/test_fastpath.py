"""The import fast path gives the same rows as the record-by-record path, and steps aside when in doubt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data import fastpath, import_data
from tunelab.data.versions import read_splits

CLEAN = {
    "classification": [{"text": "Café open?", "label": 1, "n": 3, "flag": True, "note": None, "empty": ""},
                       {"text": " spaced ", "label": 2, "n": 4, "flag": False, "note": "x", "empty": ""}],
    "instruction": [{"instruction": "Sum", "input": "1 2", "output": "3"},
                    {"instruction": "Greet", "input": "  ", "output": "Hi"}, {"instruction": "Bye", "output": "Ok"}],
    "completion": [{"prompt": "2+2=", "completion": "4", "lang": "en"}, {"prompt": "Hola", "completion": "Hi"}],
}


def _jsonl(path: Path, rows: list[dict], trailing: str = "") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + trailing, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", sorted(CLEAN))
def test_fast_and_record_paths_give_the_same_rows(store, tmp_path, kind):
    fast_file = _jsonl(tmp_path / "fast.jsonl", CLEAN[kind])
    slow_file = _jsonl(tmp_path / "slow.jsonl", CLEAN[kind], trailing="\n")  # a blank line: the record path
    assert fastpath.read_clean(fast_file, "jsonl", kind, {}, 1_000_000) is not None
    assert fastpath.read_clean(slow_file, "jsonl", kind, {}, 1_000_000) is None
    fast = import_data(store, [str(fast_file)], name="fast").version
    slow = import_data(store, [str(slow_file)], name="slow").version
    assert fast.columns == slow.columns
    assert {s: t.to_pylist() for s, t in read_splits(fast).items()} == \
        {s: t.to_pylist() for s, t in read_splits(slow).items()}


@pytest.mark.parametrize("rows", [
    [{"text": "a", "label": "x"}, {"text": 5, "label": "y"}],  # a type change
    [{"text": "a", "label": "x"}, {"text": "", "label": "y"}],  # an empty field
    [{"text": "a", "label": "x"}, {"label": "y"}],  # a missing field
    [{"text": "a", "label": 1.5}],  # a float label: the record path formats it
    [{"text": "a", "label": "x", "meta": {"k": 1}}],  # nested extras
])
def test_any_doubt_sends_the_file_to_the_record_path(tmp_path, rows):
    assert fastpath.read_clean(_jsonl(tmp_path / "d.jsonl", rows), "jsonl", "classification", {}, 10**6) is None


def test_an_oversize_line_sends_the_file_to_the_record_path(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a" * 500, "label": "x"}])
    assert fastpath.read_clean(path, "jsonl", "classification", {}, 100) is None
