"""The store owns every database access; this module is its plumbing, the table modules beside it its nouns.

SQLite by default (WAL mode, secure deletes), any SQLAlchemy URL otherwise; the schema is brought to the newest
Alembic revision whenever a store is opened, so a new workspace and an old one behave the same.

A store acts in one project (`project`, set by `tunelab.govern.access`): what it adds belongs to that project and
every list and lookup sees that project's rows only, so an object of another project is simply not found.
"""

from __future__ import annotations

import copy
import getpass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import TunelabError
from tunelab.store.audit import AuditTable
from tunelab.store.datasets import DatasetTable
from tunelab.store.jobs import JobTable
from tunelab.store.keys import KeyTable
from tunelab.store.models import ModelTable
from tunelab.store.requests import RequestTable
from tunelab.store.runs import RunTable
from tunelab.workspace import Workspace

_MIGRATIONS = Path(__file__).parent / "migrations"
# tunelab's own Alembic version table: `alembic_version` is left to other tools that share the database (the
# optuna study of `tunelab tune` lives next to the store and stamps its own revision there).
VERSION_TABLE = "tunelab_alembic_version"
DEFAULT_PROJECT = "default"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
    cursor.close()


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy (and optuna's RDBStorage) should open it: plain postgresql:// means psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _adopt_legacy_version(connection: Any, script: ScriptDirectory) -> None:
    """Workspaces made before VERSION_TABLE kept tunelab's revision in `alembic_version`: move it over."""
    tables = inspect(connection).get_table_names()
    if VERSION_TABLE in tables or "alembic_version" not in tables:
        return
    legacy = MigrationContext.configure(connection)
    revision = legacy.get_current_revision()
    if revision is None or revision not in {r.revision for r in script.walk_revisions()}:
        return  # empty, or another tool's revision
    MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).stamp(script, revision)
    connection.execute(text("DROP TABLE alembic_version"))


def _engine(url: str) -> Engine:
    url = sqlalchemy_url(url)
    try:
        engine = create_engine(url)
    except Exception as exc:  # an unparsable URL or a missing driver
        raise TunelabError(f"cannot use database URL {url.split('@')[-1]!r}: {exc}",
                           "check TUNELAB_DATABASE_URL (e.g. postgresql://user@host/db)") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store(DatasetTable, RunTable, ModelTable, KeyTable, RequestTable, AuditTable, JobTable):
    """One workspace's database, acting in one project. The plumbing (engine, sessions, migrations, the project and
    actor, compaction) is here; each table's methods are in the module that owns it (`store.datasets`, `store.runs`,
    `store.models`, `store.keys`, `store.requests`, `store.audit`, `store.jobs`; `store.users` and `store.approvals`
    as functions), so callers keep one object and every table has one owner."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        workspace.ensure()
        self.engine = _engine(workspace.database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.migrate()
        self.actor, self.project = getpass.getuser(), DEFAULT_PROJECT
        self.principal: Any = None  # the tunelab.govern Principal, once tunelab.govern.access resolved it

    def migrate(self) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                _adopt_legacy_version(connection, ScriptDirectory.from_config(cfg))
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except Exception as exc:
            if "OperationalError" in type(exc).__name__:
                raise TunelabError(f"cannot open the database: {exc.args[0] if exc.args else exc}",
                                   "check TUNELAB_HOME / TUNELAB_DATABASE_URL") from exc
            raise

    def session(self) -> Session:
        return self._sessions()

    def in_project(self, project: str, actor: str | None = None) -> Store:
        """This store (same engine and sessions) acting in another project, e.g. for one HTTP request's caller."""
        view = copy.copy(self)
        view.project, view.actor = project, actor or self.actor
        return view

    def act_as(self, actor: str, project: str) -> None:
        """Who the audit rows of this store name, and in which project (set once by `tunelab.govern.access`)."""
        self.actor, self.project = actor, project

    def scrub(self) -> None:
        """Leave no trace of deleted rows: fold the WAL back into the file and rebuild it without free pages."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if self.engine.dialect.name == "sqlite":
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                conn.execute(text("VACUUM"))
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            elif self.engine.dialect.name == "postgresql":
                conn.execute(text("VACUUM FULL datasets"))

    def close(self) -> None:
        self.engine.dispose()


def open_store(workspace: Workspace | None = None) -> Store:
    return Store(workspace or Workspace.from_env())
