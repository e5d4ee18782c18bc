"""SQLAlchemy tables. Changes go through a new Alembic revision in `migrations/versions/`, never an edit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Owned:
    """A row that belongs to one project (a tenant): every read of the store filters on it (migration 0008)."""

    project_id: Mapped[str] = mapped_column(String(100), index=True, default="default")


class DatasetRow(Owned, Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    splits: Mapped[dict] = mapped_column(JSON)
    sources: Mapped[list] = mapped_column(JSON)
    steps: Mapped[list] = mapped_column(JSON)
    config: Mapped[dict] = mapped_column(JSON)
    columns: Mapped[list] = mapped_column(JSON)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejects_path: Mapped[str | None] = mapped_column(Text)
    pii_redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_eval_set: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ModelRow(Owned, Base):
    """A registered model; the training stage fills it, the data stage reads it to guard deletions."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str | None] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    run_id: Mapped[str | None] = mapped_column(String(64))
    task: Mapped[str | None] = mapped_column(String(32))
    base_model: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict | None] = mapped_column(JSON)
    metrics: Mapped[dict | None] = mapped_column(JSON)
    stage: Mapped[str | None] = mapped_column(String(32))


class RunRow(Owned, Base):
    """One training run: what was asked, what was resolved, where it stands."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    base_model: Mapped[str] = mapped_column(Text)
    base_revision: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(32), index=True)
    config_given: Mapped[dict] = mapped_column(JSON)
    config_resolved: Mapped[dict] = mapped_column(JSON)
    environment: Mapped[dict] = mapped_column(JSON)
    output_dir: Mapped[str] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    best_val_loss: Mapped[float | None] = mapped_column(Float)
    best_val_accuracy: Mapped[float | None] = mapped_column(Float)
    best_val_f1: Mapped[float | None] = mapped_column(Float)
    best_step: Mapped[int | None] = mapped_column(Integer)
    warnings: Mapped[list] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class MetricRow(Base):
    """One point of a run's metric stream (train or eval), written as it happens so others can follow."""

    __tablename__ = "run_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    values: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime)


class AuditRow(Base):
    """Who did what, when, where, and how it ended; `detail` is the action's parameters, never record contents or
    secrets. Each row is hash-chained to the one before it (`tunelab.store.audit`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict] = mapped_column(JSON)
    project: Mapped[str] = mapped_column(String(100), default="default")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """One row: the id and hash of the newest audit row. Appends lock it, so two writers cannot fork the chain,
    and `verify` compares the log's end with it, so deleting the newest rows is caught too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    """A person (password hashed with argon2) or a service account (API keys only, no password)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | service
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)


class ProjectRow(Base):
    """A tenant; `default` exists from the start."""

    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class GrantRow(Base):
    """One role of one user in one project (`*`: every project and the workspace itself)."""

    __tablename__ = "grants"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class EvaluationRow(Owned, Base):
    """One model's results in one evaluation; the models compared in it share `evaluation_id` and the report."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(String(64), index=True)
    model_key: Mapped[str] = mapped_column(String(300))
    model_id: Mapped[str | None] = mapped_column(String(64), index=True)  # registered models only
    role: Mapped[str] = mapped_column(String(16))  # tuned | base | compare
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    split: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON)
    report_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ApiKeyRow(Owned, Base):
    """An API key of the server. Only a salted hash of its secret is kept; `id` is the public part of the key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    salt: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(128))
    models: Mapped[list | None] = mapped_column(JSON)  # None: every model
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # requests per minute; None: unlimited
    admin: Mapped[bool] = mapped_column(Boolean, default=False)  # may load and unload models
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    user_id: Mapped[str | None] = mapped_column(String(32))  # a user's CLI credential; None: inference only
    scopes: Mapped[list] = mapped_column(JSON, default=lambda: ["inference"])  # inference | manage


class RequestLogRow(Owned, Base):
    """One request the server answered; the texts are absent, redacted or in full as the server was told."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    actor: Mapped[str | None] = mapped_column(String(200))  # the principal: a user, or tl-<key id>
    model: Mapped[str | None] = mapped_column(String(300), index=True)  # None: rejected before it was read
    endpoint: Mapped[str] = mapped_column(String(100))
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    request_text: Mapped[str | None] = mapped_column(Text)
    response_text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class ApprovalRow(Base):
    """A request to put a model in production, with the evaluation it rests on; approved by a second person."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(64), index=True)
    evaluation_id: Mapped[str] = mapped_column(String(64))  # the report the approver saw
    requested_by: Mapped[str] = mapped_column(String(200))
    requester_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobRow(Owned, Base):
    """A background job (`tunelab.jobs`): what to do, who asked, which worker holds it and how it ended.

    `claimed_by` and `heartbeat_at` are the claim: a worker that stops heartbeating loses the job to another one.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued running succeeded failed cancelled
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(300))  # host:pid:uuid of the worker
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))
