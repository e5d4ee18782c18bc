"""`prepare` on constructed cases: every step does what it says and reports it."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.data.versions import read_split, read_splits
from tunelab.errors import InputError

NO_PII = {"pii": {"enabled": False}}


def _config(**sections) -> PrepConfig:
    return PrepConfig.model_validate({**NO_PII, **sections})


def _import(store, tmp_path: Path, rows: list[dict], name: str = "d", **kwargs):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return import_data(store, [str(path)], name=name, **kwargs).version


def _texts(version) -> dict[str, list[str]]:
    return {s: t.column("text").to_pylist() for s, t in read_splits(version).items()}


def _step(version, name: str) -> dict:
    return next(s for s in version.steps if s["name"] == name)


def _tickets(n: int, labels: int = 2) -> list[dict]:
    topics = ["refund", "password", "delivery", "invoice", "account", "upgrade", "cancel", "address"]
    return [{"text": f"Ticket {i}: my {topics[i % 8]} issue number {i * 7919 % 1000} needs help {'urgently' * (i % 3)}",
             "label": f"l{i % labels}"} for i in range(n)]


def test_normalize_fixes_unicode_whitespace_and_mojibake(store, tmp_path):
    rows = [{"text": "Cafe\u0301  is\u00a0open\x07 \t now ", "label": "a"}, {"text": "donâ€™t panic", "label": "b"}]
    version = prepare(store, _import(store, tmp_path, rows).id, _config(dedup={"near": False},
                                                                          split={"enabled": False}))
    assert _texts(version)["train"] == ["Caf\u00e9 is open now", "don\u2019t panic"]
    assert _step(version, "normalize")["rows_changed"] == 2


def test_exact_duplicates_after_normalisation_keep_the_held_out_copy(store, tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"text": "Where is my parcel?", "label": "delivery"}, {"text": "Where  is my parcel? ", "label": "delivery"},
        {"text": "Reset my password", "label": "account"}]) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "Where is my parcel?", "label": "delivery"}) + "\n")
    raw = import_data(store, [f"train={tmp_path / 'train.jsonl'}", f"test={tmp_path / 'test.jsonl'}"]).version
    version = prepare(store, raw.id, _config(dedup={"near": False}, split={"enabled": False}))
    assert _texts(version) == {"train": ["Reset my password"], "test": ["Where is my parcel?"]}
    step = _step(version, "dedup_exact")
    assert step["removed"] == 2 and step["clusters"] == 1
    assert step["largest_clusters"][0]["kept"] == "test:0"
    dropped = [json.loads(line) for line in Path(version.rejects_path).read_text().splitlines()]
    assert {(d["split"], d["row"]) for d in dropped} == {("train", 0), ("train", 1)}
    assert all(d["reason"] == "exact duplicate of test:0" and d["step"] == "dedup_exact" for d in dropped)


def test_near_duplicates_are_clustered_and_distinct_rows_survive(store, tmp_path):
    base = "Hello, I ordered a blue jacket last week and it still has not arrived, can you check order 5512?"
    rows = [{"text": base, "label": "x"}, {"text": base.replace("blue", "blue,"), "label": "x"},
            {"text": base.replace("week", "week!"), "label": "x"}, *_tickets(20)]
    version = prepare(store, _import(store, tmp_path, rows).id, _config(split={"enabled": False}))
    step = _step(version, "dedup_near")
    assert step["removed"] == 2 and step["clusters"] == 1 and step["largest_clusters"][0]["size"] == 3
    assert version.splits["train"] == 21


@pytest.mark.parametrize(("policy", "kept"), [("drop", []), ("majority", ["spam"]), ("keep", ["ham"])])
def test_duplicates_with_conflicting_labels(store, tmp_path, policy, kept):
    rows = [{"text": "WIN a prize now", "label": "ham"}, {"text": "WIN a prize now", "label": "spam"},
            {"text": "WIN a prize now", "label": "spam"}, {"text": "see you at lunch", "label": "ham"}]
    version = prepare(store, _import(store, tmp_path, rows).id,
                      _config(dedup={"conflicts": policy, "near": False}, split={"enabled": False}))
    labels = read_split(version, "train").to_pylist()
    assert [r["label"] for r in labels if r["text"] == "WIN a prize now"] == kept
    assert _step(version, "dedup_exact")["conflicting_clusters"] == 1


def test_split_is_seeded_stratified_and_sized(store, tmp_path):
    rows = [{"text": f"message {i} " + "spam offer" * (i % 5 == 0), "label": "spam" if i % 5 == 0 else "ham"}
            for i in range(1000)]
    raw = _import(store, tmp_path, rows)
    cfg = _config(dedup={"near": False}, leakage={"enabled": False},
                  split={"validation": 0.1, "test": 0.2, "seed": 7})
    first, again = prepare(store, raw.id, cfg), prepare(store, raw.id, cfg)
    assert first.id == again.id and first.splits == {"train": 700, "validation": 100, "test": 200}
    for split, table in read_splits(first).items():
        share = table.column("label").to_pylist().count("spam") / table.num_rows
        assert share == pytest.approx(0.2, abs=0.01), split
    other = prepare(store, raw.id, cfg.model_copy(update={"split": cfg.split.model_copy(update={"seed": 8})}))
    assert _texts(other)["test"] != _texts(first)["test"]


def test_group_column_keeps_each_customer_in_one_split(store, tmp_path):
    rows = [{"text": f"customer {c} asks question {q} about plan {c * q}", "label": f"l{q % 2}",
             "customer": f"c{c}@example.com"} for c in range(60) for q in range(5)]
    version = prepare(store, _import(store, tmp_path, rows).id,
                      _config(dedup={"near": False}, split={"group_column": "customer"}))
    owners = {s: set(t.column("customer").to_pylist()) for s, t in read_splits(version).items()}
    assert not (owners["train"] & owners["validation"] or owners["train"] & owners["test"]
                or owners["validation"] & owners["test"])
    assert sum(len(g) for g in owners.values()) == 60 and version.splits["test"] == 30


def test_data_with_its_own_test_split_only_gets_validation_carved(store, tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in _tickets(100)) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in _tickets(130)[100:]) + "\n")
    raw = import_data(store, [f"train={tmp_path / 'a.jsonl'}", f"test={tmp_path / 'b.jsonl'}"]).version
    version = prepare(store, raw.id, _config(dedup={"near": False}))
    assert version.splits == {"train": 90, "validation": 10, "test": 30}
    assert _step(version, "split")["carved"] == {"validation": 10}


def test_leakage_removes_exact_and_near_copies_of_held_out_inputs_from_train(store, tmp_path):
    leak = "Please cancel my subscription to the premium plan starting next month, thanks a lot"
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in [
        *_tickets(30), {"text": leak.upper(), "label": "l0"}, {"text": leak + "!", "label": "l1"}]) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": leak, "label": "l0"}) + "\n")
    raw = import_data(store, [f"train={tmp_path / 'train.jsonl'}", f"test={tmp_path / 'test.jsonl'}"]).version
    version = prepare(store, raw.id, _config(dedup={"exact": False, "near": False},
                                             split={"validation": 0}, normalize={"enabled": False}))
    step = _step(version, "leakage")
    assert (step["exact"], step["near"]) == (1, 1)
    assert version.splits == {"train": 30, "test": 1}


def test_leakage_checks_registered_evaluation_sets(store, tmp_path):
    held = {"text": "My card was charged twice for the same order yesterday evening", "label": "l0"}
    _import(store, tmp_path, [held], name="golden", eval_set=True)
    raw = _import(store, tmp_path, [*_tickets(40), held])
    version = prepare(store, raw.id, _config(dedup={"near": False}))
    step = _step(version, "leakage")
    assert step["exact"] == 1 and len(step["against"]) == 1
    assert all(held["text"] not in texts for texts in _texts(version).values())


def test_missing_value_policy_drop_and_fill(store, tmp_path):
    rows = [{"text": "hello <br>", "label": "a"}, {"text": "<p> </p>", "label": "b"}, {"text": "bye", "label": "c"}]
    raw = _import(store, tmp_path, rows)
    base = {"html": {"enabled": True}, "dedup": {"near": False}, "split": {"enabled": False}}
    dropped = prepare(store, raw.id, _config(**base))
    assert _texts(dropped)["train"] == ["hello", "bye"] and _step(dropped, "missing")["empty"]["text"] == 1
    filled = prepare(store, raw.id, _config(**base, missing={"policy": "fill", "fill_value": "(empty)"}))
    assert _texts(filled)["train"] == ["hello", "(empty)", "bye"]


def test_length_filter_in_whitespace_tokens(store, tmp_path):
    rows = [{"text": "one", "label": "a"}, {"text": "one two three", "label": "a"},
            {"text": " ".join(["w"] * 50), "label": "b"}]
    version = prepare(store, _import(store, tmp_path, rows).id,
                      _config(length={"enabled": True, "min_tokens": 2, "max_tokens": 10},
                              dedup={"near": False}, split={"enabled": False}))
    assert _texts(version)["train"] == ["one two three"]
    assert {k: _step(version, "length")[k] for k in ("too_short", "too_long")} == {"too_short": 1, "too_long": 1}


def test_chat_data_is_prepared_message_by_message(store, tmp_path):
    chat = {"messages": [{"role": "system", "content": "Be  brief."}, {"role": "user", "content": "Hi\u00a0there"},
                         {"role": "assistant", "content": "Hello!"}]}
    version = prepare(store, _import(store, tmp_path, [chat, chat]).id,
                      _config(dedup={"near": False}, split={"enabled": False}))
    assert read_split(version, "train").to_pylist() == [{"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"}]}]


def test_a_config_that_removes_everything_is_an_error(store, tmp_path):
    raw = _import(store, tmp_path, _tickets(5))
    with pytest.raises(InputError, match="removed every row"):
        prepare(store, raw.id, _config(length={"enabled": True, "min_tokens": 1000}))


def test_every_row_is_accounted_for(store, tmp_path):
    rows = _tickets(200) + _tickets(50)
    version = prepare(store, _import(store, tmp_path, rows).id, _config())
    dropped = pl.read_ndjson(version.rejects_path)
    assert version.rows + dropped.height == 250
    assert dropped.select(pl.struct("split", "row").n_unique()).item() == dropped.height
