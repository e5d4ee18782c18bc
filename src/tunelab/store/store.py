"""The store owns every database access: datasets, models (for lineage guards) and the audit log.

SQLite by default (WAL mode, secure deletes), any SQLAlchemy URL otherwise; the schema is brought to the newest
Alembic revision whenever a store is opened, so a new workspace and an old one behave the same.

A store acts in one project (`project`, set by `tunelab.govern.access`): what it adds belongs to that project and
every list and lookup sees that project's rows only, so an object of another project is simply not found.
"""

from __future__ import annotations

import copy
import getpass
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, delete, event, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tunelab.errors import NotFoundError, TunelabError
from tunelab.records import DatasetVersion
from tunelab.store import audit as audit_chain
from tunelab.store.schema import (
    ApiKeyRow,
    DatasetRow,
    EvaluationRow,
    MetricRow,
    ModelRow,
    RequestLogRow,
    RunRow,
)
from tunelab.workspace import Workspace

_MIGRATIONS = Path(__file__).parent / "migrations"
# tunelab's own Alembic version table: `alembic_version` is left to other tools that share the database (the
# optuna study of `tunelab tune` lives next to the store and stamps its own revision there).
VERSION_TABLE = "tunelab_alembic_version"
DEFAULT_PROJECT = "default"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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


class Store:
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

    def _mine(self, row: Any) -> Any:
        """The row if it belongs to this store's project, else None: another tenant's row does not exist here."""
        return row if row is not None and row.project_id == self.project else None

    def _own(self, query: Any, table: Any) -> Any:
        return query.where(table.project_id == self.project)

    # datasets -------------------------------------------------------------------------------------------------
    def add_dataset(self, version: DatasetVersion) -> DatasetVersion:
        """Register a version; the same content imported twice is the same version (ids are content hashes)."""
        with self.session() as s, s.begin():
            existing = s.get(DatasetRow, version.id)
            if existing is not None:
                return _to_version(existing)
            values = {f.name: getattr(version, f.name) for f in fields(DatasetVersion)}
            values["created_at"], values["project_id"] = version.created_at or _now(), self.project
            s.add(DatasetRow(**values))
        return self.get_dataset(version.id)

    def find_dataset(self, dataset_id: str) -> DatasetVersion | None:
        with self.session() as s:
            row = self._mine(s.get(DatasetRow, dataset_id))
            return _to_version(row) if row else None

    def get_dataset(self, ref: str) -> DatasetVersion:
        """Resolve an id, a unique id prefix, or a name (its newest version)."""
        with self.session() as s:
            row = self._mine(s.get(DatasetRow, ref))
            if row is None:
                mine = self._own(select(DatasetRow), DatasetRow)
                rows = s.scalars(mine.where(DatasetRow.id.startswith(ref))).all() if len(ref) >= 4 else []
                if len(rows) > 1:
                    raise TunelabError(f"dataset id prefix {ref!r} is ambiguous: {', '.join(r.id for r in rows)}")
                row = rows[0] if rows else s.scalars(
                    mine.where(DatasetRow.name == ref).order_by(DatasetRow.created_at.desc())).first()
            if row is None:
                known = s.scalars(self._own(select(DatasetRow.name), DatasetRow).distinct()).all()
                raise NotFoundError(
                    f"no dataset {ref!r}",
                    f"known datasets: {', '.join(sorted(known))}" if known
                    else "import one with `tunelab data import PATH`",
                )
            return _to_version(row)

    def list_datasets(self) -> list[DatasetVersion]:
        with self.session() as s:
            return [_to_version(r) for r in s.scalars(self._own(select(DatasetRow), DatasetRow)
                                                      .order_by(DatasetRow.created_at))]

    def eval_sets(self) -> list[DatasetVersion]:
        with self.session() as s:
            return [_to_version(r) for r in s.scalars(self._own(select(DatasetRow), DatasetRow)
                                                      .where(DatasetRow.is_eval_set))]

    def children(self, dataset_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(self._own(select(DatasetRow.id), DatasetRow)
                                  .where(DatasetRow.parent_id == dataset_id)))

    def delete_dataset(self, dataset_id: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(DatasetRow, dataset_id)
            if row is not None:
                s.delete(row)

    # models ---------------------------------------------------------------------------------------------------
    def add_model(self, model_id: str, name: str, kind: str, path: str, dataset_id: str | None,
                  **details: Any) -> None:
        """Register a model; `details` are run_id, task, base_model, labels, metrics, stage."""
        with self.session() as s, s.begin():
            s.add(ModelRow(id=model_id, name=name, kind=kind, path=path, dataset_id=dataset_id, created_at=_now(),
                           stage=details.pop("stage", "candidate"), project_id=self.project, **details))

    def models_using(self, dataset_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(ModelRow.id).where(ModelRow.dataset_id == dataset_id)))

    def get_model(self, ref: str) -> dict[str, Any]:
        """A model by id, id prefix or name (its newest), or NAME@STAGE: the newest of that name in that stage, so
        clients keep one name (`support-bot@production`) while versions change."""
        name, at, stage = ref.rpartition("@")
        if not at or not name:
            return self._lookup(ModelRow, "model", ref, "train one with `tunelab train CONFIG.yaml`")
        with self.session() as s:
            row = s.scalars(self._own(select(ModelRow), ModelRow).where(ModelRow.name == name, ModelRow.stage == stage)
                            .order_by(ModelRow.created_at.desc())).first()
            if row is None:
                stages = sorted({st or "candidate" for st in s.scalars(self._own(select(ModelRow.stage), ModelRow)
                                                                       .where(ModelRow.name == name))})
                hint = f"its versions are in: {', '.join(stages)}" if stages else f"no model is named {name!r}"
                raise NotFoundError(f"no model {name!r} in stage {stage!r}", hint)
            return _row_dict(row)

    def list_models(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_row_dict(r) for r in s.scalars(self._own(select(ModelRow), ModelRow)
                                                    .order_by(ModelRow.created_at))]

    # runs -----------------------------------------------------------------------------------------------------
    def add_run(self, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.add(RunRow(created_at=_now(), warnings=[], step=0, project_id=self.project, **values))

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.heartbeat_at = _now()

    def get_run(self, ref: str) -> dict[str, Any]:
        """A run by id, id prefix or name (its newest)."""
        return self._lookup(RunRow, "run", ref, "start one with `tunelab train CONFIG.yaml`")

    def _lookup(self, table: Any, what: str, ref: str, none_yet: str) -> dict[str, Any]:
        with self.session() as s:
            row = self._mine(s.get(table, ref)) or s.scalars(
                self._own(select(table), table).where(table.id.startswith(ref) | (table.name == ref))
                .order_by(table.created_at.desc())).first()
            if row is None:
                recent = s.scalars(self._own(select(table.id), table).order_by(table.created_at.desc()).limit(5)).all()
                hint = f"recent {what}s: {', '.join(recent)}" if recent else none_yet
                raise NotFoundError(f"no {what} {ref!r}", hint)
            return _row_dict(row)

    def list_runs(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_row_dict(r) for r in s.scalars(self._own(select(RunRow), RunRow).order_by(RunRow.created_at))]

    def add_metrics(self, run_id: str, points: list[tuple[int, str, dict[str, Any]]]) -> None:
        with self.session() as s, s.begin():
            s.add_all(MetricRow(run_id=run_id, step=step, kind=kind, values=values, at=_now())
                      for step, kind, values in points)

    def drop_metrics_after(self, run_id: str, step: int) -> None:
        """Forget points past a checkpoint that a resumed run will compute again."""
        with self.session() as s, s.begin():
            s.execute(delete(MetricRow).where(MetricRow.run_id == run_id, MetricRow.step > step))

    def metrics(self, run_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """The run's metric stream from `after_id` on, so a follower can poll for what is new."""
        with self.session() as s:
            rows = s.scalars(select(MetricRow).where(MetricRow.run_id == run_id, MetricRow.id > after_id)
                             .order_by(MetricRow.id))
            return [{"id": r.id, "step": r.step, "kind": r.kind, **r.values} for r in rows]

    # evaluations ----------------------------------------------------------------------------------------------
    def add_evaluation(self, evaluation_id: str, dataset_id: str, split: str, report_path: str,
                       results: list[dict[str, Any]]) -> None:
        """`results`: one {"model_key", "model_id", "role", "metrics"} per model scored."""
        with self.session() as s, s.begin():
            s.add_all(EvaluationRow(evaluation_id=evaluation_id, dataset_id=dataset_id, split=split,
                                    report_path=report_path, created_at=_now(), project_id=self.project, **r)
                      for r in results)

    def evaluations(self, model_id: str) -> list[dict[str, Any]]:
        """A registered model's evaluation results, newest first."""
        with self.session() as s:
            rows = s.scalars(self._own(select(EvaluationRow), EvaluationRow).where(EvaluationRow.model_id == model_id)
                             .order_by(EvaluationRow.created_at.desc(), EvaluationRow.id.desc()))
            return [_row_dict(r) for r in rows]

    def delete_evaluations(self, dataset_id: str) -> list[str]:
        """Forget the evaluations scored on a dataset; returns their report paths (the reports quote its rows)."""
        with self.session() as s, s.begin():
            rows = s.scalars(select(EvaluationRow).where(EvaluationRow.dataset_id == dataset_id)).all()
            paths = sorted({r.report_path for r in rows})
            s.execute(delete(EvaluationRow).where(EvaluationRow.dataset_id == dataset_id))
            return paths

    # api keys and request log ---------------------------------------------------------------------------------
    def add_api_key(self, **values: Any) -> None:
        """Values are the columns of `api_keys`; `tunelab.govern.keys` makes them (the hash, never the secret)."""
        with self.session() as s, s.begin():
            s.add(ApiKeyRow(**{"project_id": self.project, **values}))

    def find_api_key(self, key_id: str) -> dict[str, Any] | None:
        """Read fresh on every call, so a key revoked by another process is refused at once. Any project's key: the
        key says which project it acts in (`tunelab.govern.keys.authenticate`)."""
        with self.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return _row_values(row) if row else None

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [_row_values(r) for r in s.scalars(self._own(select(ApiKeyRow), ApiKeyRow)
                                                      .order_by(ApiKeyRow.created_at))]

    def update_api_key(self, key_id: str, **values: Any) -> None:
        with self.session() as s, s.begin():
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(**values))

    def add_requests(self, rows: list[dict[str, Any]]) -> None:
        """Append request-log rows (the columns of `request_log` but `id`, each with its caller's `project_id`)."""
        with self.session() as s, s.begin():
            s.add_all(RequestLogRow(**row) for row in rows)

    def request_log(self, limit: int = 100, model: str | None = None) -> list[dict[str, Any]]:
        """The newest requests first, optionally for one model."""
        query = self._own(select(RequestLogRow), RequestLogRow).order_by(RequestLogRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(RequestLogRow.model == model)
        with self.session() as s:
            return [_row_dict(r) for r in s.scalars(query)]

    # audit ----------------------------------------------------------------------------------------------------
    def act_as(self, actor: str, project: str) -> None:
        """Who the audit rows of this store name, and in which project (set once by `tunelab.govern.access`)."""
        self.actor, self.project = actor, project

    def audit(self, action: str, target: str, detail: dict[str, Any] | None = None, outcome: str = "ok") -> None:
        """Append one hash-chained row (`tunelab.store.audit`); secrets in `detail` are dropped."""
        audit_chain.append(self.engine, actor=self.actor, project=self.project, action=action, target=target,
                           detail=detail, outcome=outcome)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest rows first."""
        return list(reversed(audit_chain.entries(self.engine, limit=limit)))

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


def _row_values(row: Any) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}


def _row_dict(row: Any) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in _row_values(row).items()}


def _to_version(row: DatasetRow) -> DatasetVersion:
    return DatasetVersion(**{f.name: getattr(row, f.name) for f in fields(DatasetVersion)})


def open_store(workspace: Workspace | None = None) -> Store:
    return Store(workspace or Workspace.from_env())
