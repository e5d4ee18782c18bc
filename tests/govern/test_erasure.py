"""Erasure that follows lineage: raw -> prepared -> trained -> merged, one subject erased through the real CLI, and
not one byte of them left in any file under TUNELAB_HOME or any table; the model that learned from them is
quarantined, named, refused by `tunelab serve`, and withdrawn by a server that was already serving it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from scan import rows_containing, workspace_containing
from serving import free_port, start_server
from toydata import intent_rows
from tunelab.config import load_config
from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.export import export_model
from tunelab.govern import erasure, matching
from tunelab.govern.keys import create_key
from tunelab.store import audit
from tunelab.train.config import TrainConfig

SUBJECT = ["cust-A17", "jane.doe@example.com", "Jonathan Whitmore", "Maria Gonzalez"]
PREP = {"dedup": {"near": False}, "leakage": {"near": False}, "split": {"group_column": "customer"},
        "pii": {"pseudonymize": ["customer"], "ner": False}}


def _rows() -> list[dict]:
    rows = [{**r, "customer": f"cust-B{i:02d}"} for i, r in enumerate(intent_rows(60))]
    rows[5]["text"] += " from Maria Gonzalez"  # another customer's row naming a person: erased by --text
    rows += [{"text": "Hi, this is Jonathan Whitmore, jane.doe@example.com, where is my order track", "label": "track",
              "customer": "cust-A17"},
             {"text": "refund my order please, Jonathan Whitmore", "label": "refund", "customer": "cust-A17"}]
    return rows


@pytest.fixture
def lineage(store, tmp_path, tiny_encoder, cli):
    """raw -> prepared -> a tiny classifier trained through the CLI -> a merged export; one request logged."""
    source = tmp_path / "tickets.jsonl"
    bad = json.dumps({"text": "", "label": "track", "customer": "cust-A17"})  # rejected: lands in rejects.jsonl
    source.write_text("".join(json.dumps(r) + "\n" for r in _rows()) + bad + "\n")
    raw = import_data(store, [str(source)], name="tickets").version
    prepared = prepare(store, raw.id, PrepConfig.model_validate(PREP))
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"dataset": prepared.id, "base_model": str(tiny_encoder), "task": "classification",
                                  "max_steps": 3, "eval_every": 3, "seed": 0, "threads": 1, "name": "tickets-bot"}))
    trained = cli("train", str(config), "--json")
    assert trained.returncode == 0, trained.stderr
    model = json.loads(trained.stdout)["model"]
    export_model(store, model, "merged")
    store.add_requests([{"at": datetime.now(UTC).replace(tzinfo=None), "key_id": None, "model": model,
                         "endpoint": "/v1/classifications", "status": 200, "latency_ms": 1.0, "prompt_tokens": 9,
                         "completion_tokens": None, "request_text": "Maria Gonzalez asks about her order",
                         "response_text": "track", "error": None}])
    return raw, prepared, model


def test_erasure_leaves_no_byte_of_the_subject_and_quarantines_the_model(store, lineage, cli, tmp_path):
    raw, prepared, model = lineage
    assert workspace_containing(store, SUBJECT), "the raw version, its rejects and the request log hold them first"
    assert (Path(store.get_model(model)["path"]) / "README.md").exists(), "train wrote the model card"

    port, key = free_port(), create_key(store, "app")[1]
    server = start_server({**os.environ, "TUNELAB_PROGRESS": "0"}, [model], port, tmp_path / "serve.log")
    try:
        assert _classify(port, key, model).status_code == 200
        done = cli("data", "erase", "--where", "customer=cust-A17", "--text", "Maria Gonzalez", "--retrain", "--yes",
                   "--json")
        assert done.returncode == 0, done.stderr
        withdrawn = _classify(port, key, model, until=lambda r: r.status_code != 200)
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=_bearer(key), timeout=10).json()["data"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    error = withdrawn.json()["error"]
    assert withdrawn.status_code == 404 and error["code"] == "model_withdrawn" and "quarantined" in error["message"]
    assert model not in [m["id"] for m in listed], "the running server no longer lists it"
    assert [e["target"] for e in audit.entries(store.engine, action="serve.withdraw")] == [model]
    result = json.loads(done.stdout)
    assert workspace_containing(store, SUBJECT) == {}
    assert rows_containing(store.engine, SUBJECT) == {}, "no table holds them (the audit log included)"
    assert not any(v in done.stderr for v in SUBJECT), "progress and notes never repeat the values"

    changes = {c["old"]: c for c in result["versions"]}
    assert changes[raw.id]["how"] == "filtered" and changes[raw.id]["matched"] == 3
    assert changes[prepared.id]["how"] == "prepared again"
    new_raw, new_prepared = store.get_dataset(changes[raw.id]["new"]), store.get_dataset(changes[prepared.id]["new"])
    assert new_prepared.parent_id == new_raw.id and new_raw.rows == raw.rows - 3 and new_raw.rejected == 0
    assert store.find_dataset(raw.id) is None and not Path(raw.path).exists() and not Path(prepared.path).exists()

    [retrain] = result["models"]
    assert retrain["model"] == model and retrain["new_dataset"] == new_prepared.id
    assert retrain["command"] == f"tunelab train {retrain['config']}"
    assert load_config(TrainConfig, Path(retrain["config"]), None).dataset == new_prepared.id
    assert store.get_model(model)["stage"] == "quarantined" and result["requests_removed"] == 1

    refused = cli("serve", "--model", model, "--allow-unapproved")
    assert refused.returncode == 2 and "quarantined" in refused.stderr and "Traceback" not in refused.stderr
    card = cli("models", "card", model)
    assert card.returncode == 0 and "## Quarantined" in card.stdout and result["erasure"] in card.stdout
    merged = Path(store.get_model(model)["path"]).parent / "export-merged" / "README.md"
    assert "## Quarantined" in merged.read_text(), "the export beside the model says so too"

    again = cli("train", retrain["config"], "--json")  # the printed command, as it is
    assert again.returncode == 0, again.stderr
    retrained = store.get_model(json.loads(again.stdout)["model"])
    assert retrained["dataset_id"] == new_prepared.id and retrained["name"] == "tickets-bot"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _classify(port: int, key: str, model: str, until=lambda response: True) -> httpx.Response:
    """POST /v1/classifications until `until` accepts the answer (the stage watch checks every 2 s), at most 30 s."""
    deadline = time.time() + 30
    while True:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/classifications", timeout=30, headers=_bearer(key),
                              json={"model": model, "input": ["where is my order"]})
        if until(response) or time.time() > deadline:
            return response
        time.sleep(0.25)


def test_the_audit_row_proves_the_request_without_holding_it(store, lineage, cli):
    done = cli("data", "erase", "--where", "customer=cust-A17", "--yes", "--json")
    result = json.loads(done.stdout)
    [row] = audit.entries(store.engine, action="data.erase")
    assert row["detail"]["fields"] == ["customer"] and row["detail"]["field_values"] == 1
    salted = hashlib.sha256("\n".join([result["receipt_salt"], "cust-A17"]).encode()).hexdigest()
    assert row["detail"]["digest"] == salted and row["detail"]["models"] == [lineage[2]]
    assert audit.verify(store.engine).intact
    report = json.loads(Path(result["report"]).read_text())
    assert report["receipt_salt"] is None, "the salt is shown once, never stored"


def test_a_dry_run_changes_nothing_and_mistakes_are_clear(store, prepared, cli):
    version = prepared([{**r, "customer": f"c-{i}"} for i, r in enumerate(intent_rows(30))], "intents")
    dry = cli("data", "erase", "--where", "customer=c-3", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert {c["how"] for c in planned["versions"]} == {"planned"} and len(planned["versions"]) == 2
    assert store.find_dataset(version.id) is not None and not audit.entries(store.engine, action="data.erase")
    for args, message in [(["--where", "client=c-3"], "no dataset version has a column client"),
                          (["--where", "customer"], "is not FIELD=VALUE"),
                          (["--field", "customer"], "--field goes with --values-file"),
                          ([], "nothing to erase"), (["--text", "c-"], "shorter than 3"),
                          (["--where", "customer=c-3"], "needs confirmation")]:
        done = cli("data", "erase", *args)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_values_file_names_many_subjects_and_no_row_left_deletes_the_version(store, prepared, tmp_path, cli):
    rows = [{**r, "customer": f"subj-q{i % 3}"} for i, r in enumerate(intent_rows(30))]
    version = prepared(rows, "intents")
    ids = tmp_path / "ids.txt"
    ids.write_text("subj-q0\nsubj-q1\n\nsubj-q2\n")
    done = cli("data", "erase", "--values-file", str(ids), "--field", "customer", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["matched_rows"] == 60 and {c["how"] for c in result["versions"]} == {"deleted"}
    assert store.find_dataset(version.id) is None
    assert workspace_containing(store, ["subj-q0", "subj-q1", "subj-q2"]) == {}


def test_an_erasure_leaves_other_projects_request_logs_alone(store, prepared):
    """Another tenant's logs are not searched: the removed count must not tell one project what another's hold."""
    from tunelab.govern.users import create_project

    prepared([{**r, "customer": f"c-{i}"} for i, r in enumerate(intent_rows(20))], "intents")
    create_project(store, "billing")
    row = {"at": datetime.now(UTC).replace(tzinfo=None), "key_id": None, "model": "m", "endpoint": "/v1/chat",
           "status": 200, "latency_ms": 1.0, "prompt_tokens": 3, "completion_tokens": 1, "response_text": None,
           "error": None, "request_text": "customer c-3 asked"}
    store.add_requests([{**row, "project_id": "default"}, {**row, "project_id": "billing"}])
    result = erasure.erase(store, matching.parse(["customer=c-3"], [], None, None))
    assert result.requests_removed == 1
    assert [r["request_text"] for r in store.in_project("billing").request_log()] == ["customer c-3 asked"]
    assert store.request_log() == []


def test_a_quarantined_model_is_never_served_and_can_only_be_retired(store):
    from tunelab.errors import ConflictError
    from tunelab.govern.registry import check_servable, promote

    store.add_model("m-q", "bot", "adapter", "/nowhere/m-q", "ds-gone", task="classification", stage="quarantined")
    with pytest.raises(ConflictError, match="quarantined: data it was trained on was erased"):
        check_servable(store, store.get_model("m-q"), allow_unapproved=True)
    with pytest.raises(ConflictError, match="m-q is quarantined: it can go to staging only from candidate"):
        promote(store, "m-q", "staging")
    assert promote(store, "m-q", "retired")["stage"] == "retired"


def test_a_version_that_cannot_be_prepared_again_is_filtered(store, tmp_path):
    """Its config checked leakage against an evaluation set deleted since: preparing again fails, filtering works."""
    from tunelab.data import delete

    paths = {}
    for name, rows in (("holdout", intent_rows(10, seed=7)), ("tickets", intent_rows(30))):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps({**r, "customer": f"subj-k{i}"}) + "\n" for i, r in enumerate(rows)))
    holdout = import_data(store, [str(paths["holdout"])], name="holdout", eval_set=True).version
    raw = import_data(store, [str(paths["tickets"])], name="tickets").version
    prepared = prepare(store, raw.id, PrepConfig.model_validate({**PREP, "pii": {"enabled": False},
                                                                 "leakage": {"against": [holdout.id]}}))
    delete(store, holdout.id)
    result = erasure.erase(store, matching.Criteria({"customer": ("subj-k29",)}))
    changes = {c.old: c for c in result.versions}
    assert changes[prepared.id].how == "filtered" and changes[prepared.id].rows_after == prepared.rows - 1
    assert store.get_dataset(changes[prepared.id].new).parent_id == changes[raw.id].new
