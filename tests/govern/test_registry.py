"""Registry stages and four-eyes approval through the real CLI: no passing gate, no production; the one who asks
never approves; serve refuses what is not in production."""

from __future__ import annotations

import json

import pytest

from tunelab.errors import ConflictError
from tunelab.govern.registry import check_servable
from tunelab.store import open_store

PEOPLE = {"alice": "alice-pass-1", "erin": "erin-pass-22", "rita": "rita-pass-333"}


def _register(store, tmp_path, model_id, gate_passed):
    """A registered model and an evaluation of it whose eval.json carries a gate (what `tunelab eval` writes)."""
    store.add_model(model_id, f"name-{model_id}", "adapter", str(tmp_path / model_id), "ds-1", task="classification")
    if gate_passed is None:
        return
    report = tmp_path / f"ev-{model_id}" / "report.html"
    report.parent.mkdir()
    (report.parent / "eval.json").write_text(json.dumps({"gate": {"passed": gate_passed, "checks": []}}))
    store.add_evaluation(f"ev-{model_id}", "ds-1", "test", str(report),
                         [{"model_key": model_id, "model_id": model_id, "role": "tuned", "metrics": {}}])


@pytest.fixture
def as_user(cli, monkeypatch):
    def run(user, *args, input=None):
        monkeypatch.setenv("TUNELAB_USER", user)
        monkeypatch.setenv("TUNELAB_PASSWORD", PEOPLE[user])
        return cli(*args, input=input)
    return run


@pytest.fixture
def team(cli, as_user, store, tmp_path):
    assert cli("init", "--admin", "alice", "--password-stdin", input=PEOPLE["alice"] + "\n").returncode == 0
    for name, role in (("erin", "engineer"), ("rita", "reviewer")):
        added = as_user("alice", "users", "add", name, "--password-stdin", input=PEOPLE[name] + "\n")
        assert added.returncode == 0, added.stderr
        assert as_user("alice", "grants", "add", name, "default", role).returncode == 0
    for model_id, gate in (("m-good", True), ("m-failed", False), ("m-noeval", None)):
        _register(store, tmp_path, model_id, gate)
    return as_user


def _refused(result, *words):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert all(w in result.stderr for w in words), result.stderr


def test_four_eyes_promotion_to_production(team):
    _refused(team("erin", "models", "promote", "m-good", "--to", "production"), "m-good is candidate",
             "only from staging")
    assert team("erin", "models", "promote", "m-good", "--to", "staging").returncode == 0
    asked = team("erin", "models", "promote", "m-good", "--to", "production", "--json")
    assert json.loads(asked.stdout) == {"model": "m-good", "stage": "staging", "pending": True,
                                        "evaluation": "ev-m-good"}
    _refused(team("erin", "models", "approve", "m-good"), "erin may not model.approve", "reviewer")
    approved = json.loads(team("rita", "models", "approve", "m-good", "--json").stdout)
    assert approved == {"model": "m-good", "stage": "production", "evaluation": "ev-m-good", "requested_by": "erin",
                        "approved_by": "rita"}
    shown = json.loads(team("rita", "models", "show", "name-m-good@production", "--json").stdout)
    assert shown["id"] == "m-good" and shown["stage"] == "production"
    _refused(team("rita", "models", "show", "name-m-good@staging"), "no model 'name-m-good' in stage 'staging'",
             "its versions are in: production")
    log = json.loads(team("alice", "audit", "list", "--action", "model.", "--json").stdout)["entries"]
    assert [(e["actor"], e["action"], e["outcome"]) for e in log] == [
        ("erin", "model.promote", "ok"), ("erin", "model.promote", "ok"), ("erin", "model.approve", "denied"),
        ("rita", "model.approve", "ok")]
    assert log[-1]["detail"] == {"evaluation": "ev-m-good", "requested_by": "erin"}


def test_no_passing_gate_no_production_and_no_self_approval(team):
    for model in ("m-failed", "m-noeval", "m-good"):
        assert team("alice", "models", "promote", model, "--to", "staging").returncode == 0
    _refused(team("alice", "models", "promote", "m-failed", "--to", "production"), "failed its gate")
    _refused(team("alice", "models", "promote", "m-noeval", "--to", "production"), "no evaluation with a passing "
                                                                                     "gate", "--min-improvement")
    assert team("alice", "models", "promote", "m-good", "--to", "production").returncode == 0
    _refused(team("alice", "models", "approve", "m-good"), "alice asked for m-good to go to production and cannot "
                                                           "also approve it")
    _refused(team("rita", "models", "approve", "m-noeval"), "nobody asked to put m-noeval in production")
    assert team("alice", "models", "promote", "m-failed", "--to", "retired").returncode == 0
    _refused(team("alice", "models", "promote", "m-failed", "--to", "staging"), "m-failed is retired")


def test_serve_refuses_a_model_not_in_production(team, store):
    _refused(team("erin", "serve", "--model", "m-good", "--port", "0"), "model m-good is candidate, not approved "
                                                                         "for production", "--allow-unapproved")
    check_servable(store, store.get_model("m-good"), allow_unapproved=True)
    assert store.audit_log(1)[0]["action"] == "serve.unapproved"
    with pytest.raises(ConflictError, match="is candidate, not approved"):
        check_servable(store, store.get_model("m-good"), allow_unapproved=False)
    fresh = open_store()
    assert fresh.get_model("m-good")["stage"] == "candidate"
