"""Projects are tenants: what one project made, another neither lists nor finds, by id, prefix, name or alias; the
default project keeps a single-user workspace as it was; migration 0008 puts old rows there."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from toydata import intent_rows
from tunelab.data import import_data
from tunelab.errors import NotFoundError
from tunelab.govern.keys import create_key, list_keys, revoke_key
from tunelab.serve.requestlog import RequestLogger
from tunelab.store import open_store
from tunelab.store.store import _MIGRATIONS, VERSION_TABLE


@pytest.fixture
def tenants(store, tmp_path):
    """The store seen from `support` and from `billing`, each with the same file imported and a model."""
    rows = tmp_path / "intents.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in intent_rows(20)))
    views = {p: store.in_project(p) for p in ("support", "billing")}
    for project, view in views.items():
        dataset = import_data(view, [str(rows)], name="intents").version.id
        view.add_model(f"m-{project}", "bot", "full", str(tmp_path), dataset, stage="production")
        view.add_evaluation(f"e-{project}", dataset, "test", str(tmp_path / "r.html"),
                            [{"model_key": "bot", "model_id": f"m-{project}", "role": "tuned", "metrics": {}}])
    return views


def test_the_same_file_in_two_projects_is_two_versions_each_seeing_its_own(tenants):
    support, billing = tenants["support"], tenants["billing"]
    (mine,), (theirs,) = support.list_datasets(), billing.list_datasets()
    assert mine.id != theirs.id
    assert support.get_dataset("intents").id == mine.id and billing.get_dataset("intents").id == theirs.id
    for ref in (theirs.id, theirs.id[:8]):
        with pytest.raises(NotFoundError, match=f"no dataset '{ref}'") as missing:
            support.get_dataset(ref)
        assert theirs.id not in str(missing.value.hint)
    assert support.find_dataset(theirs.id) is None and support.children(theirs.id) == []


def test_models_runs_and_evaluations_of_another_project_are_not_found(tenants):
    support, billing = tenants["support"], tenants["billing"]
    assert [m["id"] for m in support.list_models()] == ["m-support"]
    assert support.get_model("bot@production")["id"] == "m-support"
    for ref in ("m-billing", "m-bill"):
        with pytest.raises(NotFoundError, match=f"no model '{ref}'") as missing:
            support.get_model(ref)
        assert "m-billing" not in str(missing.value.hint)
    assert support.evaluations("m-billing") == [] and len(billing.evaluations("m-billing")) == 1
    assert support.list_runs() == [] and support.list_models()[0]["project_id"] == "support"


def test_keys_and_the_request_log_belong_to_their_project(tenants):
    support, billing = tenants["support"], tenants["billing"]
    key, _ = create_key(billing, "app")
    assert (key.project, key.scopes) == ("billing", ("inference",))
    assert list_keys(support) == [] and [k.id for k in list_keys(billing)] == [key.id]
    with pytest.raises(NotFoundError, match=f"no API key '{key.id}'"):
        revoke_key(support, key.id)
    RequestLogger(support).log(key.id, "m-billing", "/v1/models", 200, 1.0, actor=f"tl-{key.id}", project="billing")
    assert support.request_log() == [] and billing.request_log()[0]["actor"] == f"tl-{key.id}"


def test_a_single_user_workspace_acts_in_the_default_project(store, tmp_path):
    rows = tmp_path / "intents.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in intent_rows(20)))
    version = import_data(store, [str(rows)], name="intents").version
    assert store.project == "default" and store.list_datasets()[0].id == version.id
    assert store.in_project("default").get_dataset(version.id).id == version.id


def _workspace_at(home, revision: str) -> str:
    url = f"sqlite:///{home / 'tunelab.db'}"
    home.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with create_engine(url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    return url


def test_migration_0008_puts_old_rows_in_the_default_project_and_scopes_old_keys(workspace):
    url = _workspace_at(workspace, "0007")
    with create_engine(url).begin() as db:
        version = db.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        assert version == "0007", "the test workspace must start one revision before tenancy"
        for key_id, admin, user in (("aaaaaaaaaa", 0, None), ("bbbbbbbbbb", 1, None), ("cccccccccc", 0, "u-1")):
            db.execute(text("INSERT INTO api_keys (id, name, salt, hash, admin, created_at, user_id) VALUES "
                            "(:id, 'k', '00', 'x', :admin, '2026-01-01', :user)"),
                       {"id": key_id, "admin": admin, "user": user})
        db.execute(text("INSERT INTO models (id, name, kind, path, created_at) VALUES ('m-old', 'old', 'full', '/x',"
                        " '2026-01-01')"))
    store = open_store()
    try:
        scopes = {k.id: k.scopes for k in list_keys(store)}
        assert scopes == {"aaaaaaaaaa": ("inference",), "bbbbbbbbbb": ("inference", "manage"),
                          "cccccccccc": ("inference", "manage")}
        assert store.get_model("m-old")["project_id"] == "default"
    finally:
        store.close()
