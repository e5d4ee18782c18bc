"""The same commands against a real PostgreSQL server, selected only through TUNELAB_DATABASE_URL.

The server comes from Debian's `postgresql` package; the test installs it when it is missing and it can (root with
apt), and otherwise skips, saying why.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _install() -> Path | None:
    if _binaries() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return _binaries()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _install()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed and could not be installed (needs root and Debian's apt-get)")
    root = Path(tempfile.mkdtemp(prefix="tunelab-pg-"))  # not under pytest's tmp: the server user must reach it
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(_as_postgres([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                                            "-k", str(data), "-c", "listen_addresses=127.0.0.1"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        server.terminate()
        pytest.fail("PostgreSQL did not start within 30 s")
    time.sleep(0.5)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)


def _tunelab(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "tunelab.cli", *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_data_path_runs_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    source = tmp_path / "tickets.jsonl"
    rows = [{"text": f"ticket number {i} about a {'refund' if i % 2 else 'login'} problem", "label": str(i % 2)}
            for i in range(60)]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = {**os.environ, "TUNELAB_HOME": str(tmp_path / "home"), "TUNELAB_DATABASE_URL": postgres_url,
           "TUNELAB_PROGRESS": "0"}
    imported = _tunelab(env, "data", "import", str(source), "--name", "tickets")
    prepared = _tunelab(env, "data", "prepare", "tickets", "--set", "pii.enabled=false")
    listed = _tunelab(env, "data", "list")
    assert imported["rows"] == 60
    assert prepared["parent"] == imported["dataset"] and sum(prepared["splits"].values()) > 0
    assert [d["dataset"] for d in listed["datasets"]] == [imported["dataset"], prepared["dataset"]]
    assert not (tmp_path / "home" / "tunelab.db").exists(), "the SQLite file must not be used when a URL is set"
    _tunelab(env, "data", "delete", imported["dataset"], "--yes")
    assert [d["dataset"] for d in _tunelab(env, "data", "list")["datasets"]] == [prepared["dataset"]]


def test_erasure_leaves_no_copy_in_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """The erasure test's guarantee on PostgreSQL: no table row and no live heap file holds the value after it."""
    from sqlalchemy import create_engine, text

    from scan import files_containing, rows_containing
    from tunelab.store.store import sqlalchemy_url

    source = tmp_path / "tickets.jsonl"
    rows = [{"text": f"ticket {i} about a {'refund' if i % 2 else 'login'}", "label": str(i % 2),
             "customer": "cust-Z9Q" if i < 3 else f"cust-{i}"} for i in range(40)]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    home = tmp_path / "home"
    env = {**os.environ, "TUNELAB_HOME": str(home), "TUNELAB_DATABASE_URL": postgres_url, "TUNELAB_PROGRESS": "0"}
    _tunelab(env, "data", "import", str(source), "--name", "tickets")
    _tunelab(env, "data", "prepare", "tickets", "--set", "pii.enabled=false")
    engine = create_engine(sqlalchemy_url(postgres_url))
    with engine.begin() as conn:  # a served request that quoted the subject, as --log-texts full keeps it
        conn.execute(text("INSERT INTO request_log (at, endpoint, status, latency_ms, request_text) "
                          "VALUES (now(), '/v1/classifications', 200, 1.0, 'order of cust-Z9Q')"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        data_dir = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        database = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
        conn.execute(text("CHECKPOINT"))  # onto the table's files
    heap = data_dir / "base" / str(database)
    assert files_containing(heap, ["cust-Z9Q"]), "the row reached the table's files before the erasure"
    erased = _tunelab(env, "data", "erase", "--where", "customer=cust-Z9Q", "--text", "cust-Z9Q", "--yes")
    assert erased["matched_rows"] == 6 and erased["requests_removed"] == 1
    assert rows_containing(engine, ["cust-Z9Q"]) == {}
    assert files_containing(home, ["cust-Z9Q"]) == {}
    assert files_containing(heap, ["cust-Z9Q"]) == {}, "VACUUM FULL left no dead tuple"
    engine.dispose()
