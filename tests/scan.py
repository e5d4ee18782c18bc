"""Where erased or deleted values could still hide: every file under a folder (database, WAL, free pages included)
and every row of every table of a database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine


def files_containing(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """File (relative to root) -> the needles its bytes contain, as UTF-8 or as JSON escapes them.

    Close this process's connections to a SQLite database under root first (`workspace_containing` does): closing
    any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included, and another process
    may then take this one's WAL for abandoned.
    """
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [n for n in needles if n.encode() in data or json.dumps(n)[1:-1].encode() in data]
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def rows_containing(engine: Engine, needles: list[str]) -> dict[str, int]:
    """Table -> how many of its rows hold a needle in any column (read back as text), over every table."""
    found = {}
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            hits = sum(1 for row in rows if any(n in json.dumps([str(v) for v in row], ensure_ascii=False)
                                                or n in " ".join(str(v) for v in row) for n in needles))
            if hits:
                found[table] = hits
    return found


def workspace_containing(store: Any, needles: list[str]) -> dict[str, list[str]]:
    """`files_containing` over the store's TUNELAB_HOME, its pooled connections closed first (they reopen lazily)."""
    store.engine.dispose()
    return files_containing(store.workspace.home, needles)
