"""Issue 13's done-when scenario: two projects, five users (one per role), through the real CLI (in this process,
tests/inprocess.py) and the real HTTP API (`tunelab serve` on 127.0.0.1 in a subprocess, called with the `openai`
client and httpx). Each role can do exactly what the policy table says, nothing crosses projects, and every action
and every denial is in the audit log (inference calls in the request log, with their caller and project).

support: alice admin (of the workspace), erin engineer, anna annotator, rita reviewer, vic viewer.
billing: erin engineer, vic viewer. Each has a key per project (`keys create --user`); alice logs in with her
password, which reaches the workspace actions a key never does. erin trained one tiny classifier in each project.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from inprocess import run_cli
from serving import free_port, start_server
from toydata import intent_rows
from tunelab.govern.policy import POLICY, WORKSPACE_ACTIONS
from tunelab.store import open_store
from tunelab.workspace import Workspace

PEOPLE = {"alice": "admin", "erin": "engineer", "anna": "annotator", "rita": "reviewer", "vic": "viewer"}
MEMBERS = {"support": tuple(PEOPLE), "billing": ("erin", "vic")}
NOT_IN_THE_CLI = {"data.label", "model.infer"}  # labelling has no command yet; inference is the API's (below)
QUICK = ["--set", "pii.enabled=false", "--set", "dedup.near=false", "--set", "leakage.near=false"]


@dataclass
class World:
    home: Path
    folder: Path
    keys: dict[tuple[str, str], str]  # (user, project) -> its `keys create --user` key
    app_key: str  # billing's key of no user (inference only)
    datasets: dict[str, str]  # project -> prepared dataset id
    models: dict[str, str]  # project -> model id
    runs: dict[str, str]  # project -> run id
    url: str = ""

    def cli(self, user: str | None, *args: str, project: str | None = None, key_of: str | None = None,
            input: str | None = None):
        """`tunelab [--project P] ARGS` as `user`: alice by password, the others by their key of `key_of` (by
        default of `project`, else of support)."""
        env = {"TUNELAB_HOME": str(self.home), "TUNELAB_USER": None, "TUNELAB_PASSWORD": None,
               "TUNELAB_API_KEY": None, "TUNELAB_PROJECT": None}
        if user == "alice":
            env.update(TUNELAB_USER="alice", TUNELAB_PASSWORD="alice-pass-123")
        elif user is not None:
            env["TUNELAB_API_KEY"] = self.keys[(user, key_of or project or "support")]
        return run_cli(*(["--project", project] if project else []), *args, input=input, env=env)

    def ok(self, user: str | None, *args: str, **kw) -> dict:
        done = self.cli(user, *args, "--json", **kw)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def audit(self) -> list[dict]:
        return self.ok("alice", "audit", "list")["entries"]

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def post(self, path: str, body: dict, key: str | None = None, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{self.url}{path}", json=body, headers={**auth, **headers}, timeout=60)


def _people(w: World) -> None:
    """alice initialises the workspace, adds the others, makes the projects, grants the roles and the keys."""
    w.ok(None, "init", "--admin", "alice", "--password-stdin", input="alice-pass-123\n")
    for name in list(PEOPLE)[1:]:
        w.ok("alice", "users", "add", name, "--password-stdin", input=f"{name}-pass-123\n")
    for project, members in MEMBERS.items():
        w.ok("alice", "projects", "create", project)
        for name in members[1 if project == "support" else 0:]:  # alice is admin of the workspace already
            w.ok("alice", "grants", "add", name, project, PEOPLE[name])
        for name in members:
            w.keys[(name, project)] = w.ok("alice", "keys", "create", "--name", f"{name}-{project}", "--user",
                                           name, project=project)["key"]


def _train(w: World, encoder: Path, project: str) -> None:
    """erin imports the same file into the project, prepares it and trains a tiny full classifier on it."""
    w.ok("erin", "data", "import", str(w.folder / "intents.jsonl"), "--name", "intents", project=project)
    w.datasets[project] = w.ok("erin", "data", "prepare", "intents", *QUICK, project=project)["dataset"]
    config = w.folder / f"train-{project}.yaml"
    config.write_text(json.dumps({"dataset": "intents", "base_model": str(encoder), "task": "classification",
                                  "method": "full", "max_steps": 3, "eval_every": 3, "seed": 0, "threads": 1,
                                  "name": "intent-bot"}))
    trained = w.ok("erin", "train", str(config), project=project)
    w.models[project], w.runs[project] = trained["model"], trained["run"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("scenario")
    (folder / "intents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in intent_rows(60)))
    w = World(folder / "home", folder, {}, "", {}, {}, {})
    _people(w)
    for project in MEMBERS:
        _train(w, tiny_encoder, project)
    w.app_key = w.ok("erin", "keys", "create", "--name", "billing-app", project="billing")["key"]
    env = {**os.environ, "TUNELAB_HOME": str(w.home), "HF_HUB_OFFLINE": "1", "TUNELAB_PROGRESS": "0",
           "TUNELAB_API_KEY": w.keys[("erin", "support")]}
    for name in ("TUNELAB_USER", "TUNELAB_PASSWORD", "TUNELAB_PROJECT", "TUNELAB_DATABASE_URL"):
        env.pop(name, None)
    port = free_port()
    process = start_server(env, [w.models["support"]], port, folder / "server.log", "--trusted-proxy-header",
                           "X-Forwarded-User", "--trusted-proxy", "127.0.0.1")
    w.url = f"http://127.0.0.1:{port}"
    try:
        yield w
    finally:
        process.terminate()
        process.wait(timeout=30)


# -------------------------------------------------------------------------------------------------------- the CLI


def _commands(w: World, user: str) -> list[tuple[str, list[str], bool | None]]:
    """(action, argv, whether it succeeds once allowed: None when the target makes it fail after the check). The
    targets are the user's own or harmless, so every role walks the same list in project support."""
    model, dataset, run = w.models["support"], w.datasets["support"], w.runs["support"]
    mine = w.folder / f"{user}.jsonl"
    mine.write_text("".join(json.dumps(r) + "\n" for r in intent_rows(12, seed=len(user) * 7 + ord(user[0]))))
    return [
        ("data.read", ["data", "list"], True),
        ("data.import", ["data", "import", str(mine), "--name", f"extra-{user}"], True),
        ("data.export", ["data", "export", dataset, "--split", "train", "--out", str(w.folder / f"{user}.out")], True),
        ("data.delete", ["data", "delete", f"extra-{user}", "--yes"], True),
        ("data.prepare", ["data", "prepare", "no-such-dataset"], False),
        ("runs.read", ["runs", "show", run], True),
        ("train.run", ["train", str(w.folder / "train-support.yaml"), "--set", "dataset=no-such-dataset"], False),
        ("train.cancel", ["runs", "cancel", run], False),  # it finished long ago
        ("job.submit", ["train", str(w.folder / "train-support.yaml"), "--set", "dataset=no-such-dataset",
                        "--submit"], False),
        ("job.read", ["jobs", "list"], True),
        ("job.cancel", ["jobs", "cancel", "job-ffffffffff"], False),
        ("worker.run", ["worker", "--once"], True),  # nothing queued: it returns at once
        ("eval.run", ["eval", model, "--dataset", "no-such-dataset"], False),
        ("eval.read", ["report", model], None),
        ("model.read", ["models", "list"], True),
        ("model.merge", ["models", "merge", model], False),  # full weights: nothing to merge
        ("model.export", ["export", model, "--format", "gguf"], False),  # a classifier has no GGUF
        ("model.serve", ["serve", "--model", "no-such-model"], False),
        ("model.promote", ["models", "promote", model, "--to", "production"], False),  # not staging yet
        ("model.approve", ["models", "approve", model], False),  # nobody asked
        ("keys.read", ["keys", "list"], True),
        ("keys.create", ["keys", "create", "--name", f"walk-{user}"], True),
        ("keys.revoke", ["keys", "revoke", "ffffffffff"], False),
        ("grants.read", ["grants", "list"], True),
        ("grants.manage", ["grants", "add", "vic", "support", "viewer"], True),
        ("users.manage", ["users", "list"], True),
        ("projects.manage", ["projects", "create", f"walk-{user}"], True),
        ("audit.read", ["audit", "verify"], True),
    ]


def _allowed(user: str, action: str) -> bool:
    """What the table says; a project grant never reaches a workspace action (only alice's `*` grant does)."""
    return PEOPLE[user] in POLICY[action][0] and (user == "alice" or action not in WORKSPACE_ACTIONS)


def _check(user: str, action: str, succeeds: bool | None, done) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    if not _allowed(user, action):
        assert done.returncode == 2 and f"{user} may not {action}: it needs " in done.stderr, (action, done.stderr)
        return
    assert "may not" not in done.stderr, (user, action, done.stderr)
    if succeeds is not None:
        assert (done.returncode == 0) == succeeds, (user, action, done.returncode, done.stderr)


def test_each_role_does_in_the_cli_exactly_what_the_policy_table_says(world):
    walked = set()
    for user in PEOPLE:
        for action, args, succeeds in _commands(world, user):
            _check(user, action, succeeds, world.cli(user, *args, project="support"))
            walked.add(action)
    assert walked == set(POLICY) - NOT_IN_THE_CLI, "every action of the table has a command in the walk"
    rows = world.audit()
    denied = {(e["actor"], e["action"], e["project"]) for e in rows if e["outcome"] == "denied"}
    for user in PEOPLE:
        for action in walked:
            assert ((user, action, "support") in denied) != _allowed(user, action), (user, action)
    done = {(e["actor"], e["action"]) for e in rows if e["outcome"] == "ok"}
    for user in ("alice", "erin"):
        assert {(user, a) for a in ("data.import", "data.export", "data.delete", "keys.create")} <= done
    assert {("alice", "grants.add"), ("alice", "projects.create")} <= done


def test_nothing_crosses_projects_in_the_cli(world):
    w = world
    support_key_id = w.keys[("erin", "support")][3:13]
    for args, what, ref in ((["data", "show", w.datasets["support"]], "dataset", w.datasets["support"]),
                            (["data", "export", w.datasets["support"][:9], "--split", "train"], "dataset",
                             w.datasets["support"][:9]),
                            (["models", "show", w.models["support"]], "model", w.models["support"]),
                            (["runs", "show", w.runs["support"]], "run", w.runs["support"]),
                            (["keys", "revoke", support_key_id], "API key", support_key_id)):
        refused = w.cli("erin", *args, project="billing")  # erin is engineer in both projects
        assert refused.returncode == 2 and f"no {what} '{ref}'" in refused.stderr, refused.stderr
        hint = refused.stderr.partition("hint:")[2]  # what it says exists: billing's objects only
        assert not any(ref in hint for ref in (w.models["support"], w.datasets["support"], w.runs["support"],
                                               support_key_id)), hint
    assert w.datasets["support"] != w.datasets["billing"], "one file imported by two tenants is two versions"
    listed = {p: [d["dataset"] for d in w.ok("vic", "data", "list", project=p)["datasets"]] for p in MEMBERS}
    assert not set(listed["support"]) & set(listed["billing"]) and w.datasets["billing"] in listed["billing"]
    assert [m["id"] for m in w.ok("vic", "models", "list", project="billing")["models"]] == [w.models["billing"]]


def test_a_project_without_a_grant_and_a_missing_project_look_the_same(world):
    for project in ("billing", "nowhere"):
        refused = world.cli("anna", "data", "list", project=project, key_of="support")
        assert refused.returncode == 2 and f"anna has no role in project '{project}'" in refused.stderr
    elsewhere = world.cli("vic", "models", "list", project="billing", key_of="support")  # vic is viewer there too
    assert "vic has no role in project 'billing'" in elsewhere.stderr, "a key acts in its own project only"
    missing = world.cli("alice", "data", "list", project="nowhere")
    assert missing.returncode == 2 and "no project 'nowhere'" in missing.stderr  # a workspace admin may know


def test_a_projects_reviewer_reads_its_own_trail_members_and_projects_only(world):
    trail = world.ok("rita", "audit", "list")["entries"]
    assert trail and {e["project"] for e in trail} == {"support"}
    assert {g["project"] for g in world.ok("rita", "grants", "list")["grants"]} == {"support"}
    assert world.ok("rita", "projects", "list")["projects"] == ["support"]
    assert {"default", "support", "billing"} <= set(world.ok("alice", "projects", "list")["projects"])


# --------------------------------------------------------------------------------------------------- the HTTP API


def _classify(w: World, model: str, key: str | None = None, **headers: str) -> httpx.Response:
    return w.post("/v1/classifications", {"model": model, "input": ["refund my order 12"]}, key, **headers)


def _ids(client: openai.OpenAI) -> list[str]:
    return [m.id for m in client.models.list()]


def _denied(w: World) -> set[tuple[str, str, str]]:
    return {(e["actor"], e["action"], e["project"]) for e in w.audit() if e["outcome"] == "denied"}


def _logged(w: World, project: str, actors: set[str]) -> list[dict]:
    """The project's request log once it holds a row of every actor (the server writes it in the background)."""
    store = open_store(Workspace(w.home, f"sqlite:///{w.home / 'tunelab.db'}")).in_project(project)
    deadline = time.time() + 20
    while True:
        rows = store.request_log(limit=1000)
        if actors <= {r["actor"] for r in rows} or time.time() > deadline:
            store.close()
            return rows
        time.sleep(0.2)


def test_each_role_over_the_api_does_what_the_policy_table_says(world):
    w, model = world, world.models["support"]
    for user in PEOPLE:
        key = w.keys[(user, "support")]
        assert model in _ids(w.client(key)), user  # model.infer: every role
        assert _classify(w, model, key).status_code == 200
        loaded = w.post("/v1/admin/models", {"model": model}, key)  # model.serve
        assert loaded.status_code == (200 if _allowed(user, "model.serve") else 403), (user, loaded.text)
    denied = _denied(w)
    for user in PEOPLE:
        assert ((user, "model.serve", "support") in denied) != _allowed(user, "model.serve"), user
        assert (user, "model.infer", "support") not in denied
    rows = _logged(w, "support", set(PEOPLE))
    assert set(PEOPLE) <= {r["actor"] for r in rows if r["endpoint"] == "/v1/classifications" and r["status"] == 200}


def test_nothing_crosses_projects_over_the_api(world):
    w, support, billing = world, world.models["support"], world.models["billing"]
    erin = w.keys[("erin", "billing")]
    assert w.post("/v1/admin/models", {"model": support}, erin).status_code == 404  # another's: not found
    assert w.post("/v1/admin/models", {"model": billing}, erin).status_code == 200
    in_billing, in_support = w.client(w.keys[("vic", "billing")]), w.client(w.keys[("vic", "support")])
    assert _ids(in_billing) == [billing] and _ids(in_support) == [support]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        in_support.embeddings.create(model=billing, input="refund")
    missing = _classify(w, billing, w.keys[("vic", "support")])
    assert missing.status_code == 404 and billing not in missing.json()["error"]["message"].split("Models:")[1]
    by_name = _classify(w, "intent-bot", w.keys[("vic", "billing")])  # both projects call their model so
    assert by_name.status_code == 200 and by_name.json()["model"] == billing
    assert _ids(w.client(w.app_key)) == [billing]
    refused = w.post("/v1/admin/models", {"model": billing}, w.app_key)
    assert refused.status_code == 403 and "lacks the `manage` scope" in refused.text
    assert (f"tl-{w.app_key[3:13]}", "model.serve", "billing") in _denied(w)
    assert ("erin", "serve.load", "billing") in {(e["actor"], e["action"], e["project"]) for e in w.audit()}
    rows = _logged(w, "billing", {"vic", f"tl-{w.app_key[3:13]}"})
    assert {r["actor"] for r in rows} == {"erin", "vic", f"tl-{w.app_key[3:13]}"}


def test_a_trusted_proxy_names_the_user_and_its_project(world):
    w, model = world, world.models["support"]
    as_rita = {"X-Forwarded-User": "rita", "X-Tunelab-Project": "support"}
    assert _classify(w, model, **as_rita).status_code == 200
    assert w.post("/v1/admin/models", {"model": model}, **as_rita).status_code == 403  # a reviewer
    assert _classify(w, model, **{**as_rita, "X-Tunelab-Project": "billing"}).status_code == 403
    assert _classify(w, model, **{"X-Forwarded-User": "mallory"}).status_code == 401
    denied = _denied(w)
    assert {("rita", "model.infer", "billing"), ("mallory", "auth.login", "default")} <= denied


def test_the_setup_is_in_the_audit_log_and_the_chain_is_intact(world):
    done = {(e["actor"], e["action"], e["project"]) for e in world.audit() if e["outcome"] == "ok"}
    for project in MEMBERS:
        assert {("alice", "projects.create", "default"), ("alice", "grants.add", project)} <= done
        assert {("alice", "keys.create", project), ("erin", "data.import", project), ("erin", "data.prepare", project),
                ("erin", "train.start", project), ("erin", "train.finish", project)} <= done
    assert {("alice", "users.add", "default"), ("erin", "serve.unapproved", "support")} <= done
    assert world.ok("alice", "audit", "verify")["intact"] is True
