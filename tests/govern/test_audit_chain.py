"""The audit chain: any single edited, deleted or reordered row among 100,000 is found and named; two processes
writing at once keep one chain; rows never hold secrets."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, insert, update

from tunelab.store import audit, open_store
from tunelab.store.schema import AuditHeadRow, AuditRow

ROWS = 100_000
ACTORS, ACTIONS = ("alice", "bob", "ci-bot"), ("data.import", "train.run", "eval.run", "keys.create")


def _chain(count: int) -> list[dict]:
    """A valid log of `count` rows, hashed by the store's own row_hash."""
    start, prev, rows = datetime(2026, 1, 1), audit.GENESIS, []
    for i in range(1, count + 1):
        row = {"id": i, "at": start + timedelta(seconds=i, microseconds=i % 1000), "actor": ACTORS[i % 3],
               "project": "default" if i % 2 else "support", "action": ACTIONS[i % 4], "target": f"ds-{i:06d}",
               "detail": {"rows": i, "splits": {"train": i}}, "outcome": "denied" if i % 17 == 0 else "ok"}
        row["prev_hash"], row["hash"] = prev, audit.row_hash(SimpleNamespace(**row), prev)
        prev = row["hash"]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    """A workspace database holding a 100,000-row chain (built once, copied for each tampering)."""
    home = tmp_path_factory.mktemp("audit-home")
    url = f"sqlite:///{home / 'tunelab.db'}"
    from tunelab.workspace import Workspace

    open_store(Workspace(home=home, database_url=url)).close()  # migrated schema
    engine, rows = create_engine(url), _chain(ROWS)
    with engine.begin() as conn:
        conn.execute(insert(AuditRow.__table__), rows)
        conn.execute(update(AuditHeadRow.__table__).values(last_id=ROWS, last_hash=rows[-1]["hash"]))
    engine.dispose()
    return home / "tunelab.db"


@pytest.fixture
def tampered(big_log, tmp_path):
    """A copy of the big log and a function that runs raw SQL on it, then verifies."""
    path = tmp_path / "copy.db"
    shutil.copy(big_log, path)

    def run(*statements: str) -> audit.AuditCheck:
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        engine = create_engine(f"sqlite:///{path}")
        try:
            return audit.verify(engine)
        finally:
            engine.dispose()

    return run


def test_an_untouched_log_is_intact(tampered):
    assert tampered() == audit.AuditCheck(True, ROWS)


@pytest.mark.parametrize(("change", "row_id"), [
    ("actor = 'mallory'", 1), ("project = 'other'", 4_321), ("action = 'data.read'", 50_000),
    ("target = 'ds-x'", ROWS), ("outcome = 'ok'", 17 * 1000), ("at = '2025-01-01 00:00:00.000000'", 77_777),
    ("detail = '{\"rows\": 0}'", 2), ("hash = '" + "a" * 64 + "'", ROWS - 1),
    ("prev_hash = '" + "0" * 64 + "'", 12_345)])
def test_an_edited_row_is_named(tampered, change, row_id):
    check = tampered(f"UPDATE audit_log SET {change} WHERE id = {row_id}")
    assert not check.intact and check.first_bad_id == row_id, check


@pytest.mark.parametrize("row_id", [1, 2, 33_333, ROWS - 1])
def test_a_deleted_row_is_named(tampered, row_id):
    check = tampered(f"DELETE FROM audit_log WHERE id = {row_id}")
    assert check.first_bad_id == row_id and f"row {row_id} deleted" in check.problem


def test_deleting_the_newest_row_is_caught_by_the_head(tampered):
    check = tampered(f"DELETE FROM audit_log WHERE id = {ROWS}")
    assert check.first_bad_id == ROWS and "newest rows" in check.problem


def _swap(a: int, b: int) -> tuple[str, ...]:
    return (f"UPDATE audit_log SET id = -1 WHERE id = {a}", f"UPDATE audit_log SET id = {a} WHERE id = {b}",
            f"UPDATE audit_log SET id = {b} WHERE id = -1")


@pytest.mark.parametrize(("a", "b"), [(1, 2), (10_000, 10_001), (20_000, 80_000), (ROWS - 1, ROWS)])
def test_two_swapped_rows_are_named(tampered, a, b):
    check = tampered(*_swap(a, b))
    assert not check.intact and check.first_bad_id == a and "out of place" in check.problem


def test_the_cli_exits_1_and_names_the_row(cli, workspace):
    store = open_store()
    for i in range(5):
        store.audit("data.import", f"ds-{i}", {"rows": i, "password": "hunter22", "api_key": "tl-x"})
    assert cli("audit", "verify").returncode == 0
    assert not any("hunter22" in json.dumps(e) or "tl-x" in json.dumps(e) for e in store.audit_log())
    with sqlite3.connect(workspace / "tunelab.db") as conn:
        conn.execute("UPDATE audit_log SET target = 'ds-9' WHERE id = 3")
    broken = cli("audit", "verify", "--json")
    assert broken.returncode == 1 and json.loads(broken.stdout)["first_bad_id"] == 3
    assert "BROKEN at row 3: row 3 was edited" in cli("audit", "verify").stdout


WRITER = """
import sys, time
from pathlib import Path
from tunelab.store import open_store
store = open_store()
while not Path(sys.argv[3]).exists():  # both start writing at once
    time.sleep(0.01)
for i in range(int(sys.argv[1])):
    store.audit("train.run", f"{sys.argv[2]}-{i}", {"i": i})
"""


def test_two_processes_writing_at_once_keep_one_chain(store, tmp_path):
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, "150", name, str(go)]) for name in ("a", "b")]
    time.sleep(3)  # both have opened the store
    go.touch()
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    assert audit.verify(store.engine) == audit.AuditCheck(True, 300)
    rows = audit.entries(store.engine)
    assert len({r["prev_hash"] for r in rows}) == 300  # no two rows chained to the same predecessor


def test_rows_written_before_the_chain_are_chained_by_the_migration(workspace):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from tunelab.store.store import _MIGRATIONS

    workspace.mkdir(parents=True)
    engine, cfg = create_engine(f"sqlite:///{workspace / 'tunelab.db'}"), Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        for target in ("ds-1", "ds-2"):
            conn.execute(text("INSERT INTO audit_log (at, actor, action, target, detail) VALUES "
                              "('2026-01-01 10:00:00.000000', 'root', 'data.import', :t, '{\"rows\": 3}')"),
                         {"t": target})
    engine.dispose()
    store = open_store()  # upgrades to head
    assert audit.verify(store.engine) == audit.AuditCheck(True, 2)
    store.audit("data.prepare", "ds-3", {})
    assert audit.verify(store.engine) == audit.AuditCheck(True, 3)
    assert [r["project"] for r in audit.entries(store.engine)] == ["default"] * 3
    store.close()
