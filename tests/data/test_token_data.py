"""Token-classification data as real files: span JSONL and CoNLL import, every bad span named by file, line and
field in rejects.jsonl, and `prepare` steps that rewrite the text keeping every span on its characters."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tunelab.data import import_data, prepare
from tunelab.data.frame import text_columns, to_frame
from tunelab.data.prep_config import PrepConfig
from tunelab.data.versions import read_split, read_splits

GOOD = {"text": "fly to Paris today", "spans": [{"start": 7, "end": 12, "label": "city"}]}
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
QUICK = {"pii": {"enabled": False}, "dedup": {"near": False}, "leakage": {"near": False}, "split": {"enabled": False}}


def _jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _rejects(result) -> list[dict]:
    return [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]


def _entities(row: dict) -> list[tuple[str, str]]:
    return [(row["text"][s["start"]:s["end"]], s["label"]) for s in row["spans"]]


def test_span_jsonl_is_detected_and_stored_as_sorted_structs(store, tmp_path):
    later_first = {"text": "book Rome for two", "intent": "travel",
                   "spans": [{"start": 14, "end": 17, "label": "party"}, {"start": 5, "end": 9, "label": "city"}]}
    result = import_data(store, [str(_jsonl(tmp_path / "slots.jsonl", [GOOD, later_first,
                                                                       {"text": "hello", "spans": []}]))])
    assert result.version.kind == "token_classification" and result.detection.reason == \
        "columns text + spans are present"
    table = read_split(result.version, "train")
    assert str(table.schema.field("spans").type) == "list<element: struct<start: int64, end: int64, label: string>>"
    rows = table.to_pylist()
    assert _entities(rows[1]) == [("Rome", "city"), ("two", "party")] and rows[1]["intent"] == "travel"
    assert rows[2]["spans"] == [] and result.rejected == 0


def _bad(spans, text: str = "fly to Paris today") -> str:
    return json.dumps({"text": text, "spans": spans})


def _span(start, end, label="city") -> dict:
    return {"start": start, "end": end, "label": label}


def _at(text: str, entity: str, label: str = "city", pad: int = 0) -> dict:
    """The span of `entity` in `text`, widened by `pad` characters on each side."""
    start = text.index(entity)
    return _span(start - pad, start + len(entity) + pad, label)


# (the bad record, field named, problem contains)
BAD_SPANS = [
    pytest.param(_bad([_span(0, 6), _span(4, 12, "place")]), "spans[1]", "[4, 12) place overlaps spans[0] [0, 6) city",
                 id="overlapping"),
    pytest.param(_bad([_span(7, 12), _span(7, 12)]), "spans[1]", "overlaps spans[0]", id="the-same-span-twice"),
    pytest.param(_bad([_span(-1, 3)]), "spans[0].start", "-1 is negative", id="negative-start"),
    pytest.param(_bad([_span(7, 40)]), "spans[0].end", "40 is past the end of the text (18 characters)",
                 id="end-past-the-text"),
    pytest.param(_bad([_span(7, 7)]), "spans[0]", "start 7 is not before end 7", id="empty-span"),
    pytest.param(_bad([_span(12, 7)]), "spans[0]", "start 12 is not before end 7", id="start-after-end"),
    pytest.param(_bad([_span("7", 12)]), "spans[0].start", 'a string ("7")', id="offset-as-string"),
    pytest.param(_bad([_span(7, 12.5)]), "spans[0].end", "a number (12.5)", id="offset-as-float"),
    pytest.param(_bad([_span(True, 12)]), "spans[0].start", "a boolean (true)", id="offset-as-boolean"),
    pytest.param(_bad([{"start": 7, "label": "city"}]), "spans[0].end", "missing", id="missing-end"),
    pytest.param(_bad([{"start": 7, "end": 12}]), "spans[0].label", "missing", id="missing-label"),
    pytest.param(_bad([_span(7, 12, " ")]), "spans[0].label", "empty", id="empty-label"),
    pytest.param(_bad([_span(7, 12, 3)]), "spans[0].label", "a number (3)", id="label-as-number"),
    pytest.param(_bad([{**_span(7, 12), "text": "Pari"}]), "spans[0].text", '"Pari", but the text at [7, 12) is '
                 '"Paris"', id="span-text-disagrees"),
    pytest.param(_bad(["Paris"]), "spans[0]", "a string", id="span-not-an-object"),
    pytest.param(_bad({"start": 7}), "spans", "an object", id="spans-not-a-list"),
    pytest.param(json.dumps({"text": "fly to Paris", "spans": None}), "spans", "missing", id="spans-null"),
]


@pytest.mark.parametrize(("line", "field", "problem"), BAD_SPANS)
def test_each_bad_span_is_rejected_with_file_line_and_field(store, tmp_path, line, field, problem):
    path = _jsonl(tmp_path / "slots.jsonl", [GOOD, line])
    result = import_data(store, [str(path)])
    assert result.version.rows == 1 and result.rejected == 1
    [reject] = _rejects(result)
    assert reject["file"] == str(path) and reject["line"] == 2 and reject["location"] == "line 2"
    assert any(p["field"] == field and problem in p["problem"] for p in reject["problems"]), reject["problems"]


def test_spans_in_a_csv_column_are_json(store, tmp_path):
    path = tmp_path / "slots.csv"
    path.write_text('text,spans\n"fly to Paris","[{""start"": 7, ""end"": 12, ""label"": ""city""}]"\n'
                    '"fly to Rome","[{""start"": 7"\n')
    result = import_data(store, [str(path)])
    assert _entities(read_split(result.version, "train").to_pylist()[0]) == [("Paris", "city")]
    assert "invalid JSON" in _rejects(result)[0]["reasons"][0]


CONLL = """-DOCSTART- -X- O O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
visited VBD B-VP O
New NNP B-NP I-LOC
York NNP I-NP I-LOC
Paris NNP I-NP B-LOC
"""


def test_conll_becomes_text_and_character_spans(store, tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL)
    result = import_data(store, [str(path)])
    assert result.version.kind == "token_classification" and result.rejected == 0
    assert "1 -DOCSTART- line(s) skipped" in " ".join(result.notes)
    first, second = read_split(result.version, "train").to_pylist()
    assert first["text"] == "EU rejects German call ." and _entities(first) == [("EU", "ORG"), ("German", "MISC")]
    # IOB1: I- after O starts an entity; B- splits two adjacent entities of one type
    assert _entities(second) == [("Peter Blackburn", "PER"), ("New York", "LOC"), ("Paris", "LOC")]


def test_a_bad_conll_tag_rejects_its_sentence_naming_the_line(store, tmp_path):
    path = tmp_path / "tags.txt"
    path.write_text("Paris B-LOC\nis O\n\nRome B_LOC\nis O\nnice\n\nOslo S-LOC\n")
    result = import_data(store, [str(path)], fmt="conll")
    assert result.version.rows == 1
    second, third = _rejects(result)
    assert second["line"] == 4 and second["file"] == str(path)
    assert second["reasons"] == ["field 'tag': 'B_LOC' on line 4 is not a BIO tag; expected O, B-TYPE or I-TYPE "
                                 "(BIO, IOB1 and IOB2 files read alike)",
                                 "field 'tag': line 6 has one column ('nice'); expected a token and its tag, "
                                 "separated by whitespace"]
    assert third["line"] == 8 and "'S-LOC' on line 8" in third["reasons"][0]


def test_csv_export_reimports_to_the_same_rows(store, tmp_path):
    from tunelab.data import export

    first = import_data(store, [str(_jsonl(tmp_path / "s.jsonl", [GOOD, {"text": "hi", "spans": []}]))])
    out = tmp_path / "out.csv"
    export(store, first.version.id, "train", "csv", out, None)
    again = import_data(store, [str(out)], name="again")
    assert read_split(again.version, "train").to_pylist() == read_split(first.version, "train").to_pylist()


def test_cli_imports_conll_with_format_conll(cli, tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text("Paris B-LOC\nis O\n")
    done = cli("data", "import", str(path), "--format", "conll", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "token_classification"


def test_text_columns_never_name_spans(store, tmp_path):
    result = import_data(store, [str(_jsonl(tmp_path / "s.jsonl", [{**GOOD, "intent": "travel"}]))])
    df = to_frame(read_splits(result.version))
    assert "spans" not in text_columns(df, "token_classification")
    assert "spans" not in text_columns(df, "token_classification", include_extras=True)


def _prepared(store, tmp_path, records, **config) -> list[dict]:
    imported = import_data(store, [str(_jsonl(tmp_path / "raw.jsonl", records))])
    version = prepare(store, imported.version.id, PrepConfig.model_validate({**QUICK, **config}))
    return version, read_split(version, "train").to_pylist()


def test_normalize_moves_spans_with_the_text(store, tmp_path):
    messy = "  fly\tto  New \u00a0 York\x07 on  Monday "
    accent = "cafe\u0301 in  Zu\u0308rich"  # decomposed accents: NFC composes them
    records = [{"text": messy, "spans": [_at(messy, "New \u00a0 York\x07"), _at(messy, "Monday", "day")]},
               {"text": accent, "spans": [_at(accent, "cafe\u0301", "place"), _at(accent, "Zu\u0308rich")]},
               {"text": "meet at  noon ", "spans": [_at("meet at  noon ", "noon", "time", pad=1)]}]  # on spaces
    version, rows = _prepared(store, tmp_path, records)
    assert rows[0]["text"] == "fly to New York on Monday" and _entities(rows[0]) == [("New York", "city"),
                                                                                       ("Monday", "day")]
    assert rows[1]["text"] == "caf\u00e9 in Z\u00fcrich" and _entities(rows[1]) == [("caf\u00e9", "place"),
                                                                                    ("Z\u00fcrich", "city")]
    assert rows[2]["text"] == "meet at noon" and _entities(rows[2]) == [("noon", "time")]
    stats = next(s for s in version.steps if s["name"] == "normalize")
    assert stats["rows_changed"] == 3 and stats["spans_trimmed"] == 1 and stats["rows_left_unchanged"] == 0


def test_a_rewrite_that_cannot_keep_a_span_leaves_the_row_alone_and_says_so(store, tmp_path):
    split_accent = {"text": "Zu\u0308rich  now", "spans": [_span(0, 2, "part")]}  # the span ends before the accent
    version, [row] = _prepared(store, tmp_path, [split_accent])
    assert row == split_accent
    assert next(s for s in version.steps if s["name"] == "normalize")["rows_left_unchanged"] == 1


def test_html_stripping_keeps_spans_on_their_words(store, tmp_path):
    html = "<p>Ship to <b>Lyon</b> &amp; Nice</p>"
    records = [{"text": html, "spans": [_at(html, "Lyon"), _at(html, "Nice")]}]
    _, [row] = _prepared(store, tmp_path, records, html={"enabled": True})
    assert row["text"] == "Ship to Lyon & Nice" and _entities(row) == [("Lyon", "city"), ("Nice", "city")]


def test_exact_duplicates_annotated_differently_are_a_conflict(store, tmp_path):
    records = [GOOD, {**GOOD, "spans": [_span(7, 18)]}, {"text": "fly to Oslo", "spans": [_span(7, 11)]},
               {"text": "fly to Oslo", "spans": [_span(7, 11)]}]
    version, rows = _prepared(store, tmp_path, records)
    assert [r["text"] for r in rows] == ["fly to Oslo"]
    stats = next(s for s in version.steps if s["name"] == "dedup_exact")
    assert stats["conflicting_clusters"] == 1 and stats["removed"] == 3


def test_the_dataset_card_counts_entities_per_type(store, tmp_path):
    result = import_data(store, [str(_jsonl(tmp_path / "s.jsonl", [GOOD, {**GOOD, "text": "fly to Paris now"}]))])
    card = (Path(result.version.path) / "card.html").read_text()
    assert "Entity types" in card and "Entity spans per type and split" in card


@pytest.mark.skipif(not (SHARED / "snips").exists(), reason="../shared/data/snips is not here")
def test_snips_slots_import_and_prepare_with_valid_spans(store):
    result = import_data(store, [f"train={SHARED / 'snips' / 'test_spans.jsonl'}"], name="snips-test")
    [reject] = _rejects(result)  # the published file has one off-by-one span
    assert reject["line"] == 345 and reject["problems"][0]["field"] == "spans[2].end"
    version = prepare(store, result.version.id, PrepConfig.model_validate({"pii": {"enabled": False}}))
    frame = pl.concat([pl.from_arrow(t) for t in read_splits(version).values()])
    for row in frame.iter_rows(named=True):
        for span in row["spans"]:
            entity = row["text"][span["start"]:span["end"]]
            assert entity and entity == entity.strip(), (row, span)
