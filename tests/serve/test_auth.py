"""Who calls the server and what they may do: key scopes, the key's user and project, a trusted proxy's user header,
each checked in the policy table, every refusal in the audit log and every answer in the request log with its caller.

The real app in this process (Starlette's test client, no models loaded: /v1/models and the admin routes are enough
to judge access); tests/govern/test_scenario.py does the same through a real server with real models.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tunelab.config import parse_config
from tunelab.govern import users
from tunelab.govern.keys import create_key
from tunelab.serve.app import create_app
from tunelab.serve.registry import ModelRegistry
from tunelab.serve.settings import ServeSettings

PROXY = "10.0.0.7"


@pytest.fixture
def world(store):
    """Projects support and billing; rita is reviewer in support, sam engineer in support (service account)."""
    for project in ("support", "billing"):
        users.create_project(store, project)
    users.add_user(store, "rita", "rita-pass-1")
    users.add_user(store, "sam", None, service=True)
    users.grant(store, "rita", "support", "reviewer")
    users.grant(store, "sam", "support", "engineer")
    support = store.in_project("support")
    keys = {"app": create_key(support, "app")[1], "ops": create_key(support, "ops", scopes=["manage"])[1],
            "rita": create_key(support, "rita", user_id=users.principal_of(store, _user(store, "rita")).id)[1],
            "sam": create_key(support, "sam", user_id=users.principal_of(store, _user(store, "sam")).id)[1],
            "billing": create_key(store.in_project("billing"), "b-app")[1]}
    settings = parse_config(ServeSettings, {"trusted_proxy_header": "X-Forwarded-User", "trusted_proxies":
                                            [PROXY]}, "test")
    return store, keys, create_app(store, ModelRegistry(store, settings), settings)


def _user(store, name):
    from tunelab.store import users as table

    return table.find_user(store, name)


def _client(app, host: str = "127.0.0.1") -> TestClient:
    return TestClient(app, client=(host, 50000))


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _denied(store) -> list[tuple[str, str, str]]:
    return [(e["actor"], e["action"], e["project"]) for e in reversed(store.audit_log(limit=1000))
            if e["outcome"] == "denied"]


def test_scopes_and_roles_decide_together_and_refusals_are_audited(world):
    store, keys, app = world
    with _client(app) as client:
        assert client.get("/v1/models", headers=_bearer(keys["app"])).status_code == 200
        refused = client.post("/v1/admin/models", json={"model": "x"}, headers=_bearer(keys["app"]))
        assert refused.status_code == 403 and "lacks the `manage` scope" in refused.json()["error"]["message"]
        reviewer = client.post("/v1/admin/models", json={"model": "x"}, headers=_bearer(keys["rita"]))
        assert reviewer.status_code == 403 and "rita may not model.serve" in reviewer.json()["error"]["message"]
        engineer = client.post("/v1/admin/models", json={"model": "nothing-here"}, headers=_bearer(keys["sam"]))
        assert engineer.status_code == 404  # allowed; the model just is not there
        assert client.get("/v1/models", headers=_bearer(keys["ops"])).status_code == 403  # manage without inference
    app_id, ops_id = keys["app"][3:13], keys["ops"][3:13]
    assert _denied(store) == [(f"tl-{app_id}", "model.serve", "support"), ("rita", "model.serve", "support"),
                              (f"tl-{ops_id}", "model.infer", "support")]


def test_missing_and_wrong_keys_are_401_and_audited_without_the_secret(world):
    store, keys, app = world
    wrong = keys["app"][:-4] + "AAAA"
    with _client(app) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/models", headers=_bearer(wrong)).status_code == 401
    failed = [e for e in store.audit_log() if e["action"] == "auth.login"]
    assert [e["actor"] for e in failed] == [f"tl-{keys['app'][3:13]}", "anonymous"]  # newest first
    assert all(e["outcome"] == "denied" for e in failed) and wrong.split(".")[1] not in str(failed)


def test_an_unauthenticated_client_cannot_write_into_another_projects_trail(world):
    store, _keys, app = world
    with _client(app) as client:
        assert client.get("/v1/models", headers={"X-Tunelab-Project": "billing"}).status_code == 401
    failed = [e for e in store.audit_log() if e["action"] == "auth.login"]
    assert failed and {e["project"] for e in failed} == {"default"}


def test_a_trusted_proxy_names_the_user_and_the_project(world):
    store, _keys, app = world
    with _client(app, PROXY) as client:
        as_rita = {"X-Forwarded-User": "rita", "X-Tunelab-Project": "support"}
        assert client.get("/v1/models", headers=as_rita).status_code == 200
        elsewhere = client.get("/v1/models", headers={**as_rita, "X-Tunelab-Project": "billing"})
        assert elsewhere.status_code == 403 and "rita has no role in project 'billing'" in elsewhere.text
        stranger = client.get("/v1/models", headers={"X-Forwarded-User": "mallory"})
        assert stranger.status_code == 401 and "'mallory', who is not a tunelab user" in stranger.text
    users.disable_user(store, "rita")
    with _client(app, PROXY) as client:
        assert client.get("/v1/models", headers=as_rita).status_code == 401
    logged = store.in_project("support").request_log()
    assert (logged[-1]["actor"], logged[-1]["key_id"], logged[-1]["status"]) == ("rita", None, 200)
    assert ("rita", "model.infer", "billing") in _denied(store) and ("mallory", "auth.login", "default") in \
        _denied(store)


def test_the_user_header_from_an_untrusted_address_is_ignored(world):
    _store, keys, app = world
    with _client(app, "10.9.9.9") as client:
        ignored = client.get("/v1/models", headers={"X-Forwarded-User": "rita"})
        assert ignored.status_code == 401 and "missing API key" in ignored.text
        assert client.get("/v1/models", headers={"X-Forwarded-User": "rita", **_bearer(keys["app"])}).status_code == 200


def test_a_key_acts_in_its_own_project_and_its_answers_are_logged_there(world):
    store, keys, app = world
    with _client(app) as client:
        assert client.get("/v1/models", headers=_bearer(keys["billing"])).status_code == 200
        assert client.get("/v1/models", headers=_bearer(keys["rita"])).status_code == 200
    billing_id = keys["billing"][3:13]
    assert [r["actor"] for r in store.in_project("billing").request_log()] == [f"tl-{billing_id}"]
    assert [r["actor"] for r in store.in_project("support").request_log()] == ["rita"]


def test_a_user_header_without_trusted_proxies_is_a_config_error():
    with pytest.raises(Exception, match="trusted_proxy_header needs trusted_proxies"):
        parse_config(ServeSettings, {"trusted_proxy_header": "X-Forwarded-User"}, "tunelab serve")


def test_metrics_show_a_tenant_its_own_series_only(world):
    _store, keys, app = world
    with _client(app) as client:
        for key in ("app", "billing"):
            assert client.get("/v1/models", headers=_bearer(keys[key])).status_code == 200
        billing = client.get("/metrics", headers=_bearer(keys["billing"])).text
        support = client.get("/metrics", headers=_bearer(keys["app"])).text
    assert 'tunelab_requests_total{endpoint="/v1/models",model="",project="billing"' in billing
    assert 'project="support"' not in billing
    assert 'project="support"' in support and 'project="billing"' not in support
    assert "tunelab_request_latency_seconds_bucket" in billing, "the server-wide histograms stay"
