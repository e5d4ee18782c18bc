"""The job queue without training: claims raced by several processes, the stale rule, cancelling a queued job,
params checked at `--submit`, and jobs as tenants (another project neither lists, finds, cancels nor runs them)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from jobhelpers import submit, write_config

from inprocess import run_cli
from toydata import intent_rows
from tunelab.data import import_data
from tunelab.jobs.worker import WorkerOptions, requeue_stale
from tunelab.store.rows import now

CLAIMER = """
import pathlib, sys, time
from tunelab.store import open_store
store, go, won = open_store(), pathlib.Path(sys.argv[2]), []
while not go.exists():
    time.sleep(0.005)
while (job := store.claim_job(sys.argv[1], None)) is not None:
    won.append(job["id"])
print(" ".join(won))
"""


def _queue(store, n: int, prefix: str = "job-00") -> list[str]:
    ids = [f"{prefix}{i:08x}" for i in range(n)]
    for job_id in ids:
        store.add_job(id=job_id, kind="train", params={}, created_by="me")
    return ids


def test_processes_racing_for_claims_win_each_job_exactly_once(store, tmp_path):
    ids = _queue(store, 60)
    go = tmp_path / "go"
    claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, f"w{n}", str(go)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for n in range(4)]
    go.touch()
    won = [c.communicate(timeout=120) for c in claimers]
    assert all(c.returncode == 0 for c in claimers), [err for _, err in won]
    claimed = [job for out, _ in won for job in out.split()]
    assert sorted(claimed) == ids  # every job once: none twice, none lost
    rows = {j["id"]: j for j in store.list_jobs()}
    assert {rows[j]["state"] for j in ids} == {"running"} and {rows[j]["attempts"] for j in ids} == {1}


def test_a_stale_job_is_requeued_then_failed_after_its_attempts_and_a_live_one_is_left(store):
    stale, live, spent = _queue(store, 3)
    for _ in range(3):
        store.claim_job("dead-worker", None)
    store.update_job(stale, heartbeat_at=now() - timedelta(seconds=120))
    store.update_job(spent, heartbeat_at=now() - timedelta(seconds=120), attempts=3)
    requeue_stale(store, WorkerOptions(stale=60, max_attempts=3), None)
    rows = {j["id"]: j for j in store.list_jobs()}
    assert rows[stale]["state"] == "queued" and rows[stale]["claimed_by"] is None
    assert "dead-worker stopped heartbeating" in rows[stale]["error"] and rows[stale]["attempts"] == 1
    assert rows[live]["state"] == "running" and rows[live]["claimed_by"] == "dead-worker"
    assert rows[spent]["state"] == "failed" and "on attempt 3 of 3: given up" in rows[spent]["error"]
    again = store.claim_job("new-worker", None)
    assert again["id"] == stale and again["attempts"] == 2
    assert not store.take_over(rows[live] | {"heartbeat_at": now() - timedelta(days=1)}, state="queued")
    actions = [e["action"] for e in store.audit_log()]
    assert "job.requeue" in actions and "job.fail" in actions


def test_bad_params_are_refused_at_submit_with_a_clear_error(store, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("dataset: x\nbase_model: y\nlearnig_rate: 0.1\n")
    refused = run_cli("train", str(typo), "--submit")
    assert refused.returncode == 2 and "learnig_rate: unknown key" in refused.stderr
    missing = run_cli("train", str(write_config(tmp_path, "missing", "no-such-dataset", "y")), "--submit")
    assert missing.returncode == 2 and "no dataset 'no-such-dataset'" in missing.stderr
    both = run_cli("train", str(typo), "--resume", "run-x", "--submit")
    assert both.returncode == 2 and "--resume continues a run with its own config" in both.stderr
    for done in (refused, missing, both):
        assert "Traceback" not in done.stderr
    assert store.list_jobs() == []


def test_a_queued_job_is_cancelled_at_once_and_no_worker_runs_it(store, tmp_path):
    dataset = import_data(store, [str(_rows(tmp_path))], name="intents").version.id
    job = submit(write_config(tmp_path, "train", dataset, "minilm-l6"))
    assert job["state"] == "queued" and job["created_by"] == store.actor and job["params"]["config"]["max_steps"] == 2
    cancelled = run_cli("jobs", "cancel", job["job"][:8], "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"
    again = run_cli("jobs", "cancel", job["job"])
    assert again.returncode == 2 and "is cancelled" in again.stderr
    ran = run_cli("worker", "--once", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["jobs"] == []
    listed = json.loads(run_cli("jobs", "list", "--json").stdout)["jobs"]
    assert [(j["job"], j["state"]) for j in listed] == [(job["job"], "cancelled")]


def _rows(folder):
    path = folder / "intents.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in intent_rows(20)))
    return path


def _people(folder) -> dict[str, dict[str, str]]:
    """alice (workspace admin), bob (engineer in support), carol (viewer in support), dave (engineer in default)."""
    env = {name: {"TUNELAB_USER": name, "TUNELAB_PASSWORD": f"{name}-password"} for name in
           ("alice", "bob", "carol", "dave")}
    assert run_cli("init", "--admin", "alice", "--password-stdin", input="alice-password\n").returncode == 0
    assert run_cli("projects", "create", "support", env=env["alice"]).returncode == 0
    for name, project, role in (("bob", "support", "engineer"), ("carol", "support", "viewer"),
                                ("dave", "default", "engineer")):
        assert run_cli("users", "add", name, "--password-stdin", input=f"{name}-password\n",
                       env=env["alice"]).returncode == 0
        assert run_cli("grants", "add", name, project, role, env=env["alice"]).returncode == 0
    return env


def test_jobs_belong_to_their_project_and_a_refusal_is_audited(store, tmp_path):
    env = _people(tmp_path)
    dataset = import_data(store.in_project("support"), [str(_rows(tmp_path))], name="intents").version.id
    config = write_config(tmp_path, "train", dataset, "minilm-l6")
    queued = run_cli("--project", "support", "train", str(config), "--submit", "--json", env=env["bob"])
    assert queued.returncode == 0, queued.stderr
    job = json.loads(queued.stdout)
    assert job["created_by"] == "bob" and job["project"] == "support"
    seen = run_cli("--project", "support", "jobs", "list", "--json", env=env["carol"])
    assert [j["job"] for j in json.loads(seen.stdout)["jobs"]] == [job["job"]]
    for who, args, needs in (("carol", ["jobs", "cancel", job["job"]], "job.cancel"),
                             ("carol", ["train", str(config), "--submit"], "job.submit"),
                             ("carol", ["worker", "--once"], "worker.run")):
        refused = run_cli("--project", "support", *args, env=env[who])
        assert refused.returncode == 2 and f"{who} may not {needs}" in refused.stderr, refused.stderr
    elsewhere = run_cli("jobs", "show", job["job"], env=env["alice"])  # the default project
    assert elsewhere.returncode == 2 and f"no job '{job['job']}'" in elsewhere.stderr
    assert json.loads(run_cli("jobs", "list", "--json", env=env["dave"]).stdout)["jobs"] == []
    ran = run_cli("worker", "--once", "--json", env=env["dave"])  # an engineer of default only: not support's
    assert ran.returncode == 0 and json.loads(ran.stdout)["jobs"] == []
    assert store.in_project("support").get_job(job["job"])["state"] == "queued"
    denied = {(e["actor"], e["action"]) for e in store.audit_log(500) if e["outcome"] == "denied"}
    assert {("carol", "job.cancel"), ("carol", "job.submit"), ("carol", "worker.run")} <= denied
    assert ("bob", "job.submit") in {(e["actor"], e["action"]) for e in store.audit_log(500) if e["outcome"] == "ok"}
