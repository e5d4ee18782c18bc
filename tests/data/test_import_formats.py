"""Round trips: the same small dataset of each shape, written in every input format, imports to the same canonical
rows, and exports (JSONL, CSV, Parquet) read back equal. Plus splits, content-hashed ids, detection and --map."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunelab.data import export, import_data
from tunelab.errors import InputError

# Rows 0 and 3 (the first of each DatasetDict split) have every column: pyarrow and `datasets` take a
# table's columns from its first row.
ROWS = {
    "chat": [
        {"messages": [{"role": "system", "content": "Réponds en français."}, {"role": "user", "content": "Bonjour ?"},
                      {"role": "assistant", "content": "Bonjour ! Ça va ?"}], "source": "web"},
        {"messages": [{"role": "user", "content": "Wie spät ist es?"},
                      {"role": "assistant", "content": "Es ist 12 Uhr."}], "source": "mail"},
        {"messages": [{"role": "user", "content": "日本語で話せますか"},
                      {"role": "assistant", "content": "はい、話せます"},
                      {"role": "user", "content": "ありがとう"}, {"role": "assistant", "content": "どういたしまして"}],
         "source": "chat"},
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "source": "web"},
        {"messages": [{"role": "user", "content": "emoji 🙂"}, {"role": "assistant", "content": "👍"}],
         "source": "app"},
    ],
    "instruction": [
        {"instruction": "Translate to English", "input": "¿Dónde está la estación?", "output": "Where is the station?",
         "source": "web"},
        {"instruction": "Name a colour", "output": "Blue", "source": "mail"},
        {"instruction": "Summarise", "input": "Der Zug fährt um 8 Uhr ab.", "output": "The train leaves at 8.",
         "source": "web"},
        {"instruction": "Reverse the word", "input": "naïve", "output": "evïan", "source": "web"},
        {"instruction": "Say hello in Japanese", "output": "こんにちは", "source": "app"},
    ],
    "completion": [
        {"prompt": "Once upon a time", "completion": " there was a café.", "source": "book"},
        {"prompt": "Straße means", "completion": " street", "source": "dict"},
        {"prompt": "1, 2, 3,", "completion": " 4", "source": "math"},
        {"prompt": "東京は", "completion": "日本の首都です", "source": "wiki"},
        {"prompt": "Ελληνικά:", "completion": " γεια σου", "source": "dict"},
    ],
    "classification": [
        {"text": "Win a free prize now!", "label": "spam", "source": "sms"},
        {"text": "See you at the café at 5", "label": "ham", "source": "sms"},
        {"text": "Ваш выигрыш ждёт вас", "label": "spam", "source": "sms"},
        {"text": "Meeting moved to Thursday", "label": "ham", "source": "mail"},
        {"text": "お得なセール開催中", "label": "spam", "source": "mail"},
    ],
}
COLUMNS = {"chat": ["messages", "source"], "instruction": ["instruction", "output", "input", "source"],
           "completion": ["prompt", "completion", "source"], "classification": ["text", "label", "source"]}
DETECTED_BY = {"chat": "messages", "instruction": "instruction + output", "completion": "prompt + completion",
               "classification": "text + label"}
FORMATS = ["csv", "tsv", "jsonl", "json", "parquet", "hf-dataset", "hf-datasetdict"]


def _canonical(row: dict) -> dict:
    return {"input": "", **row} if "instruction" in row else row


def _cell(value) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value


def _write(path: Path, fmt: str, rows: list[dict], columns: list[str]) -> Path:
    """`rows` in one input format; returns what to import (a file or a save_to_disk folder)."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(row.get(c, "")) for c in columns] for row in rows)
        path = path.with_suffix(".csv")
        path.write_text(buffer.getvalue(), encoding="utf-8")
    elif fmt == "tsv":  # no quoting at all: the cells hold no tabs or newlines
        path = path.with_suffix(".tsv")
        lines = ["\t".join(columns), *("\t".join(_cell(row.get(c, "")) for c in columns) for row in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        path = path.with_suffix(".jsonl")
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif fmt == "json":
        path = path.with_suffix(".json")
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "parquet":
        path = path.with_suffix(".parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "hf-dataset":
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    else:
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:3]),
                              "test": datasets.Dataset.from_list(rows[3:])}).save_to_disk(str(path))
    return path


def _read_export(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{**row, "messages": json.loads(row["messages"])} if "messages" in row else row for row in rows]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", list(ROWS))
def test_every_format_is_detected_and_round_trips_through_import_and_export(store, tmp_path, kind, fmt):
    source = _write(tmp_path / "source", fmt, ROWS[kind], COLUMNS[kind])

    result = import_data(store, [str(source)])

    version = result.version
    assert (version.kind, version.columns, result.rejected) == (kind, COLUMNS[kind], 0)
    assert result.detection.reason == f"columns {DETECTED_BY[kind]} are present"
    expected = [_canonical(row) for row in ROWS[kind]]
    splits = {"train": expected[:3], "test": expected[3:]} if fmt == "hf-datasetdict" else {"train": expected}
    assert version.splits == {split: len(rows) for split, rows in splits.items()}
    for split, rows in splits.items():
        for out_fmt in ("jsonl", "csv", "parquet"):
            out = tmp_path / f"{split}.{out_fmt}"
            written = export(store, version.id, split, out_fmt, out, io.BytesIO())
            assert written["rows"] == len(rows)
            assert _read_export(out, out_fmt) == rows, (split, out_fmt)


def test_pre_split_files_keep_their_splits(store, tmp_path):
    train = _write(tmp_path / "a", "jsonl", ROWS["completion"][:4], COLUMNS["completion"])
    test = _write(tmp_path / "b", "jsonl", ROWS["completion"][4:], COLUMNS["completion"])

    version = import_data(store, [f"train={train}", f"test={test}"]).version

    assert version.splits == {"train": 4, "test": 1}
    assert [s["split"] for s in version.sources] == ["train", "test"]
    out = tmp_path / "test-out.jsonl"
    export(store, version.id, "test", "jsonl", out, io.BytesIO())
    assert _read_export(out, "jsonl") == ROWS["completion"][4:]


def test_the_same_content_imported_twice_gets_the_same_id(store, tmp_path):
    first = _write(tmp_path / "first", "jsonl", ROWS["classification"], COLUMNS["classification"])
    second = tmp_path / "copy" / "second.jsonl"
    second.parent.mkdir()
    second.write_bytes(first.read_bytes())

    ids = {import_data(store, [str(path)], name="tickets").version.id for path in (first, second, first)}

    assert len(ids) == 1 and [v.id for v in store.list_datasets()] == list(ids)
    renamed = import_data(store, [str(first)], name="tickets-eu").version
    assert renamed.id not in ids and renamed.name == "tickets-eu"


def test_same_rows_with_other_rejects_or_as_an_eval_set_are_distinct_versions(store, tmp_path):
    good = [json.dumps(row, ensure_ascii=False) for row in ROWS["classification"]]
    one = tmp_path / "one.jsonl"
    one.write_text("\n".join([*good, '{"text": "x", "label": ""}']), encoding="utf-8")
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join([*good, '{"text": 5, "label": "spam"}']), encoding="utf-8")

    plain = import_data(store, [str(one)]).version
    rejected_otherwise = import_data(store, [str(other)]).version
    as_eval_set = import_data(store, [str(one)], eval_set=True).version

    assert len({plain.id, rejected_otherwise.id, as_eval_set.id}) == 3
    assert as_eval_set.is_eval_set and not plain.is_eval_set
    assert str(other) in Path(rejected_otherwise.rejects_path).read_text(encoding="utf-8")


def test_forcing_a_shape_the_columns_do_not_fit_names_the_missing_columns(store, tmp_path):
    source = _write(tmp_path / "d", "csv", ROWS["classification"], COLUMNS["classification"])

    with pytest.raises(InputError) as error:
        import_data(store, [str(source)], fmt="instruction")

    assert error.value.message == ("--format instruction needs the column(s) instruction, output; "
                                   "the data has text, label, source")
    assert store.list_datasets() == []


def test_map_renames_a_column_to_a_field(store, tmp_path):
    rows = [{"text": r["text"], "category": r["label"]} for r in ROWS["classification"]]
    source = _write(tmp_path / "d", "csv", rows, ["text", "category"])

    result = import_data(store, [str(source)], mapping={"category": "label"})

    assert (result.version.kind, result.version.columns) == ("classification", ["text", "label"])
    assert result.version.config["map"] == {"category": "label"}
    out = tmp_path / "out.jsonl"
    export(store, result.version.id, "train", "jsonl", out, io.BytesIO())
    assert _read_export(out, "jsonl") == [{"text": r["text"], "label": r["label"]} for r in ROWS["classification"]]
