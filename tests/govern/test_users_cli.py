"""Users, projects and grants through the real CLI (in this process; one subprocess smoke test): who you are, what
you may do, and what the audit log keeps."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys

import pytest

ALICE, BOB = ("alice", "alice-pass-1"), ("bob", "bob-pass-22")


@pytest.fixture
def login(monkeypatch):
    """Act as a user from now on (None: nobody), as a shell would with TUNELAB_USER / TUNELAB_PASSWORD."""
    def act(user=None, project=None, key=None):
        for name, value in (("TUNELAB_USER", user and user[0]), ("TUNELAB_PASSWORD", user and user[1]),
                            ("TUNELAB_PROJECT", project), ("TUNELAB_API_KEY", key)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
    act()
    return act


@pytest.fixture
def workspace_with_users(tunelab, login):
    cli = tunelab
    assert cli("init", "--admin", ALICE[0], "--password-stdin", input=ALICE[1] + "\n").returncode == 0
    login(ALICE)
    assert cli("users", "add", BOB[0], "--password-stdin", input=BOB[1] + "\n").returncode == 0
    assert cli("projects", "create", "support").returncode == 0
    assert cli("grants", "add", "bob", "support", "engineer").returncode == 0
    return cli


def _refused(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and all(w in result.stderr for w in words), result.stderr


def _audit(cli, *args):
    listed = cli("audit", "list", "--json", *args)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["entries"]


def test_the_real_command_in_a_subprocess_logs_in_and_refuses_as_in_process(workspace_with_users, login):
    """The one subprocess of this file: the installed entry point agrees with the in-process runner."""
    login(BOB, project="support")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tunelab.cli", *args], capture_output=True, text=True,
                              env=dict(os.environ), timeout=300)

    assert run("data", "list").returncode == 0
    _refused(run("users", "add", "eve", "--service"), "bob may not users.manage", "it needs admin")


def test_a_workspace_without_users_acts_as_the_local_admin(tunelab):
    cli = tunelab
    assert cli("data", "list").returncode == 0
    assert cli("projects", "create", "support").returncode == 0
    assert _audit(cli, "--action", "projects.create")[0]["actor"] == getpass.getuser()


def test_users_projects_and_grants_round_trip(workspace_with_users, login):
    cli = workspace_with_users
    users = {u["name"]: u for u in json.loads(cli("users", "list", "--json").stdout)["users"]}
    assert users["alice"]["grants"] == {"*": "admin"} and users["bob"]["grants"] == {"support": "engineer"}
    assert not any("hash" in key for u in users.values() for key in u)
    assert json.loads(cli("projects", "list", "--json").stdout)["projects"] == ["default", "support"]
    assert cli("grants", "add", "bob", "default", "viewer").returncode == 0
    assert cli("grants", "remove", "bob", "support").returncode == 0
    grants = json.loads(cli("grants", "list", "--json").stdout)["grants"]
    assert grants == [{"user": "alice", "project": "*", "role": "admin"},
                      {"user": "bob", "project": "default", "role": "viewer"}]
    _refused(cli("grants", "add", "bob", "nowhere", "viewer"), "no project 'nowhere'", "projects: default, support")
    _refused(cli("grants", "add", "bob", "default", "boss"), "unknown role 'boss'", "roles: admin, engineer")
    _refused(cli("init", "--admin", "eve", "--password-stdin", input="whatever-1\n"), "already initialised")
    assert {"users.add", "projects.create", "grants.add", "grants.remove"} <= {e["action"] for e in _audit(cli)}
    assert not any(ALICE[1] in json.dumps(e) or BOB[1] in json.dumps(e) for e in _audit(cli))


def test_missing_wrong_or_unknown_credentials_are_clear_errors(workspace_with_users, login):
    cli = workspace_with_users
    login()
    _refused(cli("data", "list"), "this workspace has users", "TUNELAB_USER and TUNELAB_PASSWORD")
    login(("alice", "not-her-password"))
    _refused(cli("data", "list"), "wrong user name or password for 'alice'")
    login(("mallory", "anything-at-all"))
    _refused(cli("data", "list"), "wrong user name or password for 'mallory'")
    login(ALICE)
    assert cli("users", "disable", "bob").returncode == 0
    login(BOB, project="support")
    _refused(cli("data", "list"), "user 'bob' is disabled")
    login(ALICE)
    failed = [e for e in _audit(cli, "--action", "auth.login") if e["outcome"] == "denied"]
    assert [e["actor"] for e in failed] == ["anonymous", "alice", "mallory", "bob"]


def test_roles_are_enforced_per_project_and_denials_are_audited(workspace_with_users, login, tmp_path):
    cli = workspace_with_users
    login(BOB, project="support")
    assert cli("data", "list").returncode == 0
    _refused(cli("users", "add", "eve", "--service"), "bob may not users.manage", "it needs admin")
    _refused(cli("grants", "add", "bob", "support", "admin"), "bob may not grants.manage", "bob is engineer")
    login(BOB)  # the default project: bob has no role there
    _refused(cli("data", "import", str(tmp_path / "x.csv")), "bob may not data.import",
             "bob has no role in project 'default'")
    login(ALICE)
    denied = [(e["actor"], e["action"], e["project"]) for e in _audit(cli) if e["outcome"] == "denied"]
    assert denied == [("bob", "users.manage", "support"), ("bob", "grants.manage", "support"),
                      ("bob", "data.import", "default")]
    assert cli("audit", "verify").returncode == 0


def test_a_users_api_key_logs_in_and_an_inference_key_does_not(workspace_with_users, login):
    cli = workspace_with_users
    assert cli("users", "add", "ci-bot", "--service").returncode == 0
    assert cli("grants", "add", "ci-bot", "support", "viewer").returncode == 0
    assert cli("grants", "add", "ci-bot", "default", "viewer").returncode == 0
    made = cli("--project", "support", "keys", "create", "--name", "ci", "--user", "ci-bot", "--json")
    assert json.loads(made.stdout)["scopes"] == ["inference", "manage"] and json.loads(made.stdout)["project"] == \
        "support"
    bot_key = json.loads(made.stdout)["key"]
    plain_key = json.loads(cli("keys", "create", "--name", "app", "--json").stdout)["key"]
    narrow_key = json.loads(cli("keys", "create", "--name", "ci-read", "--user", "ci-bot", "--scope", "inference",
                                "--json").stdout)["key"]
    login(key=bot_key)  # the key's own project by default
    assert cli("models", "list").returncode == 0
    _refused(cli("keys", "create", "--name", "more"), "ci-bot may not keys.create", "ci-bot is viewer")
    login(key=bot_key, project="default")  # a key acts in its project only, whatever its user may do elsewhere
    _refused(cli("models", "list"), "ci-bot may not model.read", "ci-bot has no role in project 'default'")
    login(key=narrow_key)
    _refused(cli("models", "list"), "has only the inference scope", "--scope manage")
    login(key=plain_key)
    _refused(cli("models", "list"), "belongs to no user", "--user USER")
    login(BOB, project="support")
    _refused(cli("keys", "create", "--name", "mine", "--user", "alice"), "bob may not users.manage")
    _refused(cli("--project", "default", "keys", "create", "--name", "x", "--user", "bob"), "bob may not keys.create")
    assert cli("keys", "create", "--name", "mine", "--user", "bob").returncode == 0
    login(ALICE)
    _refused(cli("keys", "create", "--name", "bobs", "--user", "bob"), "bob has no role in project 'default'",
             "tunelab grants add bob default ROLE")
    login(("ci-bot", "no-password-at-all"))
    _refused(cli("models", "list"), "wrong user name or password for 'ci-bot'")
