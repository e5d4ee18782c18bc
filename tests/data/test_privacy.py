"""Personal data: the prepared version holds none, and deleting the raw version leaves no copy anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scan import files_containing, rows_containing, workspace_containing
from tunelab.data import delete, import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.errors import ConflictError

SECRETS = ["jane.doe@example.com", "+1 415-555-0132", "4111 1111 1111 1111", "Jonathan Whitmore", "203.0.113.77"]
ROWS = [
    {"text": "Hi, this is Jonathan Whitmore, my email is jane.doe@example.com", "label": "account",
     "customer": "cust-001"},
    {"text": "Call me back on +1 415-555-0132 about the refund please", "label": "refund", "customer": "cust-002"},
    {"text": "I paid with card 4111 1111 1111 1111 and was charged twice", "label": "billing", "customer": "cust-003"},
    {"text": "Login fails from IP 203.0.113.77 since this morning", "label": "account", "customer": "cust-004"},
    *({"text": f"Question {i} about shipping times to the warehouse", "label": "shipping", "customer": f"cust-1{i:02d}"}
      for i in range(30)),
]


@pytest.fixture
def raw_and_prepared(store, tmp_path):
    source = tmp_path / "tickets.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    raw = import_data(store, [str(source)], name="tickets").version
    cfg = PrepConfig.model_validate({"dedup": {"near": False}, "split": {"group_column": "customer"},
                                     "pii": {"pseudonymize": ["customer"]}})
    return raw, prepare(store, raw.id, cfg)


def test_the_prepared_version_holds_no_original_values(store, raw_and_prepared):
    raw, prepared = raw_and_prepared
    assert files_containing(Path(prepared.path), SECRETS) == {}
    assert files_containing(Path(prepared.path), ["cust-001"]) == {}, "group ids are pseudonymised"
    assert files_containing(Path(raw.path), SECRETS), "the raw version keeps the originals until deleted"
    step = next(s for s in prepared.steps if s["name"] == "pii")
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "PERSON"} <= set(step["entities"])
    assert step["rows_with_pii"] >= 4
    assert prepared.pii_redacted and not raw.pii_redacted


def test_deleting_the_raw_version_leaves_no_copy_in_the_workspace(store, raw_and_prepared):
    raw, prepared = raw_and_prepared
    delete(store, raw.id)
    assert workspace_containing(store, SECRETS) == {}
    assert rows_containing(store.engine, SECRETS) == {}, "every table of the database"
    assert store.find_dataset(raw.id) is None and store.find_dataset(prepared.id) is not None
    assert store.audit_log(1)[0]["action"] == "data.delete"


def test_delete_refuses_while_a_model_uses_the_data(store, raw_and_prepared, cli):
    _, prepared = raw_and_prepared
    store.add_model("m-1", "spam-classifier", "adapter", "/models/m-1", prepared.id)
    with pytest.raises(ConflictError, match="used by model"):
        delete(store, prepared.id)
    refused = cli("data", "delete", prepared.id, "--yes")
    assert refused.returncode == 2 and "--force" in refused.stderr and "Traceback" not in refused.stderr
    forced = cli("data", "delete", prepared.id, "--yes", "--force", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["models"] == ["m-1"]


def test_delete_without_yes_asks_and_without_a_terminal_refuses(raw_and_prepared, cli):
    raw, _ = raw_and_prepared
    done = cli("data", "delete", raw.id)
    assert done.returncode == 2 and "--yes" in done.stderr
