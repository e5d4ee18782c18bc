"""Malformed input, one kind of problem per case, as real files: every bad record is accounted for in rejects.jsonl
with its line (or record number), field and what was expected, and a file that cannot be imported is named in a
clear error (exit code 2 from the CLI, never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunelab.data import import_data
from tunelab.data.versions import read_split
from tunelab.errors import InputError

TEXT = '{"text": "fine", "label": "ham"}'
TURNS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
CHAT = json.dumps({"messages": TURNS})
INSTRUCTION = '{"instruction": "translate", "input": "bonjour", "output": "hello"}'


def _chat(*turns: tuple[str, object]) -> str:
    return json.dumps({"messages": [{"role": role, "content": content} for role, content in turns]})


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    return path


def _rejects(result) -> list[dict]:
    with open(result.rejects_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _rows(result) -> list[dict]:
    return read_split(result.version, "train").to_pylist()


# (file name, lines, location of the one bad record, field, problem contains, expected contains)
REJECTED = [
    pytest.param("d.jsonl", [TEXT, '{"text": "a", "label": }'], "line 2", None, "invalid JSON (Expecting value",
                 "one JSON object per line", id="jsonl-invalid-json"),
    pytest.param("d.jsonl", [TEXT, '["fine", "ham"]'], "line 2", None, "a JSON array", "a JSON object",
                 id="jsonl-line-is-array"),
    pytest.param("d.jsonl", [TEXT, "42"], "line 2", None, "a JSON number", "a JSON object", id="jsonl-line-is-number"),
    pytest.param("d.jsonl", [TEXT, '{"text": 42, "label": "ham"}'], "line 2", "text", "a number (42)", "a string",
                 id="number-as-text"),
    pytest.param("d.jsonl", [TEXT, '{"text": {"body": "x"}, "label": "ham"}'], "line 2", "text",
                 'an object ({"body": "x"})', "a string", id="object-as-text"),
    pytest.param("d.jsonl", [INSTRUCTION, '{"instruction": ["a", "b"], "output": "c"}'], "line 2", "instruction",
                 "an array", "a string", id="list-as-instruction"),
    pytest.param("d.jsonl", [TEXT, '{"text": "no label here"}'], "line 2", "label", "missing", "a non-empty string",
                 id="missing-field"),
    pytest.param("d.jsonl", [TEXT, '{"text": "", "label": "ham"}'], "line 2", "text", "empty", "a non-empty string",
                 id="empty-string-field"),
    pytest.param("d.jsonl", [TEXT, '{"text": " \\t\\n ", "label": "ham"}'], "line 2", "text", "empty",
                 "a non-empty string", id="whitespace-only-field"),
    pytest.param("d.jsonl", [INSTRUCTION, '{"instruction": "x", "output": null}'], "line 2", "output", "missing",
                 "a non-empty string", id="null-field"),
    pytest.param("d.jsonl", [CHAT, _chat(("user", "hi"), ("bot", "hello"))], "line 2", "messages[1].role",
                 'unknown role "bot"', "one of system, user, assistant", id="unknown-role"),
    pytest.param("d.jsonl", [CHAT, _chat(("assistant", "hello"), ("user", "hi"))], "line 2", "messages[0].role",
                 "assistant after the start", "user and assistant turns alternating", id="assistant-first"),
    pytest.param("d.jsonl", [CHAT, _chat(("user", "hi"), ("user", "again"), ("assistant", "x"))], "line 2",
                 "messages[1].role", "user after user", "alternating from user", id="user-twice"),
    pytest.param("d.jsonl", [CHAT, _chat(("user", "hi"), ("system", "be nice"), ("assistant", "x"))], "line 2",
                 "messages[1].role", "system after user", "an optional system message", id="system-not-first"),
    pytest.param("d.jsonl", [CHAT, _chat(("system", "be nice"), ("user", "hi"))], "line 2", "messages",
                 "no assistant turn", "at least one assistant message", id="no-assistant-turn"),
    pytest.param("d.jsonl", [CHAT, '{"messages": []}'], "line 2", "messages", "empty", "a non-empty array",
                 id="empty-messages"),
    pytest.param("d.jsonl", [CHAT, '{"messages": "hi there"}'], "line 2", "messages", "a string",
                 "a non-empty array of {role, content} objects", id="messages-not-a-list"),
    pytest.param("d.jsonl", [CHAT, '{"messages": ["hi", {"role": "assistant", "content": "x"}]}'], "line 2",
                 "messages[0]", "a string", "an object with role and content", id="message-not-an-object"),
    pytest.param("d.jsonl", [CHAT, _chat(("user", "hi"), ("assistant", ""))], "line 2", "messages[1].content",
                 "empty", "a non-empty string", id="message-empty-content"),
    pytest.param("d.csv", ["messages,source", _csv_cell(json.dumps(TURNS)) + ",web",
                           _csv_cell(json.dumps(TURNS)[:-20]) + ",web"],
                 "line 3", "messages", "invalid JSON", "a JSON array of {role, content}", id="csv-messages-bad-json"),
    pytest.param("d.jsonl", [TEXT, '{"text": "a", "label": ""}'], "line 2", "label", "empty", "a non-empty string",
                 id="empty-label"),
    pytest.param("d.jsonl", [TEXT, '{"text": "a", "label": ["ham", "spam"]}'], "line 2", "label", "an array",
                 "one scalar label", id="list-label"),
    pytest.param("d.jsonl", [TEXT, '{"text": "a", "label": {"name": "ham"}}'], "line 2", "label", "an object",
                 "one scalar label", id="dict-label"),
    pytest.param("d.jsonl", [TEXT, '{"text": "a", "label": NaN}'], "line 2", "label", "NaN", "one scalar label",
                 id="nan-label"),
    pytest.param("d.jsonl", [TEXT, b'{"text": "caf\xe9", "label": "ham"}', TEXT], "line 2", None,
                 "byte 0xe9 at column 14 is not valid UTF-8", "UTF-8 text", id="jsonl-non-utf8-line"),
    pytest.param("d.csv", ["text,label", "fine,ham", b"caf\xe9,ham", "ok,spam"], "line 3", None,
                 "byte 0xe9 at column 4 is not valid UTF-8", "UTF-8 text", id="csv-non-utf8-line"),
    pytest.param("d.csv", ["text,label", "fine,ham", "a,b,c"], "line 3", None, "the row has 3 fields",
                 "2 fields like the header (text, label)", id="csv-too-many-fields"),
    pytest.param("d.csv", ["text,label,source", "fine,ham,web", "lonely"], "line 3", None, "the row has 1 fields",
                 "3 fields like the header (text, label, source)", id="csv-too-few-fields"),
    pytest.param("d.tsv", ["text\tlabel", "fine\tham", "a\tb\tc"], "line 3", None, "the row has 3 fields",
                 "2 fields like the header", id="tsv-ragged"),
]


@pytest.mark.parametrize(("name", "lines", "location", "field", "problem", "expected"), REJECTED)
def test_a_bad_record_is_rejected_naming_its_line_field_and_expectation(store, tmp_path, name, lines, location,
                                                                        field, problem, expected):
    path = _write(tmp_path / name, lines)

    result = import_data(store, [str(path)])

    [reject] = _rejects(result)
    assert reject["file"] == str(path)
    assert reject["location"] == location and reject["line"] == int(location.split()[1])
    assert [p["field"] for p in reject["problems"]] == [field]
    assert problem in reject["problems"][0]["problem"]
    assert expected in reject["problems"][0]["expected"]
    assert reject["reasons"] and expected in reject["reasons"][0]
    records_in = len(lines) - (1 if name.endswith((".csv", ".tsv")) else 0)
    assert result.version.rows + result.rejected == records_in == result.version.steps[0]["rows_in"]
    assert result.version.rejected == result.rejected == 1


@pytest.mark.parametrize("name", ["d.jsonl", "d.csv", "d.json"])
def test_an_oversize_record_is_rejected_with_its_size_and_the_limit(store, tmp_path, name):
    long = "x" * 300
    if name == "d.csv":
        lines = ["text,label", "fine,ham", f"{long},ham"]
    else:
        lines = [TEXT, json.dumps({"text": long, "label": "ham"})]
    if name == "d.json":
        lines = ["[" + ",\n".join(lines) + "]"]
    path = _write(tmp_path / name, lines)

    result = import_data(store, [str(path)], max_record_bytes=100)

    [reject] = _rejects(result)
    assert reject["location"] == ("record 2" if name == "d.json" else "line 3" if name == "d.csv" else "line 2")
    problem = reject["problems"][0]
    assert problem["field"] is None and problem["problem"].startswith("the record is 3")
    assert problem["expected"] == "at most 100 bytes (raise --max-record-bytes)"
    assert (result.version.rows, result.rejected) == (1, 1)


def test_json_array_non_object_elements_are_rejected_by_record_number(store, tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"text": "fine", "label": "ham"}, 7, ["a"], {"text": "ok", "label": "spam"}]')

    result = import_data(store, [str(path)])

    rejects = _rejects(result)
    assert [(r["location"], r["line"]) for r in rejects] == [("record 2", None), ("record 3", None)]
    assert [r["problems"][0]["problem"] for r in rejects] == ["a JSON number", "a JSON array"]
    assert all(r["problems"][0]["expected"] == "an object" for r in rejects)
    assert result.version.rows + result.rejected == 4


def test_parquet_column_of_the_wrong_type_rejects_the_rows_that_have_a_value(store, tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b", "c"], "input": pa.array([None, 5, None], pa.int64()),
                             "output": ["x", "y", "z"]}), path)

    result = import_data(store, [str(path)])

    [reject] = _rejects(result)
    assert (reject["location"], reject["line"]) == ("record 2", None)
    assert reject["problems"] == [{"field": "input", "problem": "a number (5)", "expected": "a string"}]
    assert [r["input"] for r in _rows(result)] == ["", ""]
    assert result.version.rows + result.rejected == 3


def test_chat_messages_as_a_json_string_in_a_csv_column_are_parsed(store, tmp_path):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "¿qué tal?"},
                {"role": "assistant", "content": "bien, gracias"}]
    path = tmp_path / "d.csv"
    path.write_text(f"messages,source\n{_csv_cell(json.dumps(messages, ensure_ascii=False))},web\n", encoding="utf-8")

    result = import_data(store, [str(path)])

    assert result.rejected == 0 and result.version.kind == "chat"
    assert _rows(result) == [{"messages": messages, "source": "web"}]


def test_numeric_and_boolean_labels_are_kept_as_strings(store, tmp_path):
    path = _write(tmp_path / "d.jsonl", ['{"text": "a", "label": 1}', '{"text": "b", "label": 0.5}',
                                         '{"text": "c", "label": true}', '{"text": "d", "label": false}'])

    result = import_data(store, [str(path)])

    assert result.rejected == 0
    assert [r["label"] for r in _rows(result)] == ["1", "0.5", "true", "false"]


@pytest.mark.parametrize(("content", "note"), [
    (b"\xef\xbb\xbftext,label\nna\xc3\xafve,ham\nok,spam\n", "a UTF-8 byte-order mark was removed"),
    (b"text,label\r\nna\xc3\xafve,ham\r\nok,spam\r\n", "Windows (CRLF) line endings were read as plain newlines"),
], ids=["utf8-bom", "crlf"])
def test_a_utf8_bom_or_crlf_line_endings_are_accepted_and_noted(store, tmp_path, content, note):
    path = tmp_path / "d.csv"
    path.write_bytes(content)

    result = import_data(store, [str(path)])

    assert result.rejected == 0 and result.version.columns == ["text", "label"]
    assert _rows(result) == [{"text": "naïve", "label": "ham"}, {"text": "ok", "label": "spam"}]
    assert result.notes == [f"d.csv: {note}"]


@pytest.mark.parametrize(("name", "lines", "blank"), [
    ("d.jsonl", ["", TEXT, "", "   ", TEXT.replace("fine", "also fine"), ""], 4),
    ("d.csv", ["text,label", "", "fine,ham", "  ", "ok,spam", ""], 3),
])
def test_blank_lines_are_skipped_and_counted_in_the_notes_not_the_rows(store, tmp_path, name, lines, blank):
    path = _write(tmp_path / name, lines)

    result = import_data(store, [str(path)])

    assert (result.version.rows, result.rejected) == (2, 0)
    assert result.notes == [f"{name}: {blank} blank line(s) skipped"]


def test_tsv_keeps_quotes_inside_fields_literally(store, tmp_path):
    path = _write(tmp_path / "d.tsv", ["text\tlabel", 'he said "hi" to me\tham', '"quoted start\t"odd'])

    result = import_data(store, [str(path)])

    assert _rows(result) == [{"text": 'he said "hi" to me', "label": "ham"},
                             {"text": '"quoted start', "label": '"odd'}]


def test_csv_quoted_multiline_field_keeps_the_next_records_line_number(store, tmp_path):
    path = _write(tmp_path / "d.csv", ["text,label", '"first line', "second line", 'third line",ham', "bad,row,here",
                                       "ok,spam"])

    result = import_data(store, [str(path)])

    [reject] = _rejects(result)
    assert (reject["location"], reject["line"]) == ("line 5", 5)
    assert _rows(result)[0]["text"] == "first line\nsecond line\nthird line"
    assert result.version.rows + result.rejected == 3


# (file name, content, what the error message contains, what its hint contains)
UNREADABLE = [
    pytest.param("d.jsonl", b"", "the file is empty", "at least one record", id="empty-file"),
    pytest.param("d.csv", b"  \n\t\n \n", "the file is empty", "at least one record", id="whitespace-only-file"),
    pytest.param("d.csv", b"text,label\n", "no records (only blank lines or a header)", "check the file",
                 id="header-only-csv"),
    pytest.param("d.jsonl", '{"text": "a", "label": "b"}\n'.encode("utf-16"), "UTF-16 encoded; expected UTF-8",
                 "re-save the file as UTF-8", id="utf16-file"),
    pytest.param("d.jsonl", b"{text: a}\n[1]\n", "no readable record in the first 1,000 (2 unreadable; line 1: "
                 "invalid JSON", "format and encoding", id="every-record-unparseable"),
    pytest.param("d.json", b'[{"text": "a", "label": "b"},\n {"text": }]', "line 2, column 11: invalid JSON",
                 "use .jsonl for one object per line", id="invalid-json-array"),
]


@pytest.mark.parametrize(("name", "content", "message", "hint"), UNREADABLE)
def test_a_file_that_cannot_be_imported_is_an_error_naming_it(store, tmp_path, name, content, message, hint):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)])

    assert error.value.message.startswith(f"{path}: ")
    assert message in error.value.message and hint in error.value.hint
    assert store.list_datasets() == []


def test_unknown_shape_is_an_error_suggesting_a_map_for_the_columns(store, tmp_path):
    path = _write(tmp_path / "d.csv", ["SMS,Label", "win a prize,spam"])

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)])

    assert error.value.message.startswith("cannot tell the shape of the data from its columns (SMS, Label); expected")
    assert error.value.hint == "rename columns with --map SMS=text --map Label=label"


def test_every_bad_record_is_listed_in_the_error_when_all_are_bad(store, tmp_path):
    path = _write(tmp_path / "d.jsonl", ['{"text": "a", "label": ""}', '{"text": "b"}'])

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)])

    assert error.value.message.startswith(f"{path}: all 2 record(s) are invalid; the first problems:\n")
    assert f"{path}:line 1: field 'label': empty; expected a non-empty string" in error.value.message
    assert f"{path}:line 2: field 'label': missing; expected a non-empty string" in error.value.message


def test_parquet_column_of_the_wrong_type_everywhere_is_an_error_naming_the_field(store, tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": [1, 2], "label": ["ham", "spam"]}), path)

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)])

    assert error.value.message.startswith(f"{path}: all 2 record(s) are invalid")
    assert "record 1: field 'text': a number (1); expected a string" in error.value.message


def test_strict_with_one_bad_row_imports_nothing(store, tmp_path):
    path = _write(tmp_path / "d.jsonl", [TEXT, '{"text": "a", "label": ""}', TEXT.replace("fine", "good")])

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)], strict=True)

    assert "--strict: 1 record(s) are invalid" in error.value.message
    assert f"{path}:line 2: field 'label': empty" in error.value.message
    assert store.list_datasets() == []


def test_unknown_format_is_an_error_listing_the_known_ones(store, tmp_path):
    path = _write(tmp_path / "d.jsonl", [TEXT])

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)], fmt="sms")

    assert error.value.message == "unknown --format 'sms'"
    assert error.value.hint == ("use one of: auto, chat, instruction, completion, token_classification, "
                                "classification, conll")


def test_map_naming_a_missing_column_lists_the_files_own_columns(store, tmp_path):
    path = _write(tmp_path / "d.csv", ["SMS,Label", "win a prize,spam"])

    with pytest.raises(InputError) as error:
        import_data(store, [str(path)], mapping={"SMS": "text", "Category": "label"})

    assert error.value.message == f"--map names column(s) Category that {path} does not have"
    assert error.value.hint == "its columns are: SMS, Label"


def test_cli_empty_file_exits_2_with_error_and_hint_naming_the_file(cli, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")

    run = cli("data", "import", str(path))

    assert run.returncode == 2 and run.stdout == ""
    hint = "hint: check the path; an import needs at least one record"
    assert run.stderr == f"error: {path}: the file is empty\n{hint}\n"


def test_cli_missing_path_exits_2_without_traceback(cli, tmp_path):
    run = cli("data", "import", str(tmp_path / "nope.csv"), "--json")

    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: {tmp_path / 'nope.csv'}: no such file or directory\nhint: ")
    assert "Traceback" not in run.stderr


def test_cli_wholly_invalid_file_exits_2_without_traceback(cli, tmp_path):
    path = _write(tmp_path / "bad.jsonl", ['{"text": 1, "label": "a"}', '{"text": 2, "label": "b"}'])

    run = cli("data", "import", str(path))

    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith(f"error: {path}: all 2 record(s) are invalid")
    assert "\nhint: " in run.stderr and "Traceback" not in run.stderr


def test_cli_json_prints_exactly_one_object(cli, tmp_path):
    path = _write(tmp_path / "d.jsonl", [TEXT, '{"text": "a", "label": ""}'])

    run = cli("data", "import", str(path), "--json")

    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)  # one JSON document, nothing else on stdout
    assert run.stdout.count("\n") == 1 and isinstance(result, dict)
    assert {"dataset", "rows", "rejected", "rejects_path"} <= set(result)
    assert (result["rows"], result["rejected"]) == (1, 1)
    assert result["dataset"].startswith("ds-") and Path(result["rejects_path"]).is_file()
