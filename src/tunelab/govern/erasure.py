"""Erasure that follows lineage: `tunelab data erase` (GDPR art. 17).

A request (`--where FIELD=VALUE`, `--text VALUE`, a values file) names rows. Every dataset version holding such rows
is affected, and so is everything derived from it, because a prepared version carries the subject's text even where
de-identification removed the value itself (a pseudonymised id, a ticket with the name redacted). Parents come
first: a version that holds matching rows is rewritten without them; a prepared version whose parent was rewritten
is prepared again, with its own config, from the new parent (the same steps, so its rows are what they would have
been had the subject never been there). The old versions' files, evaluation reports and records are then deleted
through `tunelab.data.delete`, request-log rows that quote a value go too, and the database is compacted so no copy
stays in free pages or the WAL. Models trained on an affected version become `quarantined` (never served) and the
report says what to retrain, with a config ready for `tunelab train`. The audit row holds counts and a salted
digest of the values, never the values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ValidationError

from tunelab.data import delete, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.data.versions import VersionWriter, read_splits
from tunelab.errors import InputError, TunelabError
from tunelab.govern import matching
from tunelab.govern.matching import Criteria
from tunelab.progress import say
from tunelab.records import DatasetVersion
from tunelab.store import Store
from tunelab.store import erasure as erased_rows

QUARANTINED = "quarantined"


class VersionChange(BaseModel):
    """One affected version and what replaced it (None: no rows were left)."""

    old: str
    name: str
    matched: int  # rows that matched the request in the version itself
    rows_before: int
    rows_after: int
    new: str | None
    how: Literal["filtered", "prepared again", "deleted", "planned"]


class Retrain(BaseModel):
    """A quarantined model and how to train it again on the data that replaced its own."""

    model: str
    name: str
    run: str | None
    old_dataset: str | None
    new_dataset: str | None
    config: str | None = None  # a train.yaml written with --retrain
    command: str | None = None


class ErasureResult(BaseModel):
    erasure: str
    dry_run: bool
    matched_rows: int  # summed over the versions that hold them (a raw row and its prepared copy: 2)
    versions: list[VersionChange]
    models: list[Retrain]
    requests_removed: int = 0
    receipt_salt: str | None = None  # shown once: with the values it reproduces the audited digest
    report: str | None = None


def affected(store: Store, criteria: Criteria) -> tuple[list[DatasetVersion], dict[str, int]]:
    """The versions to replace, parents before children, and the rows each holds that match directly."""
    versions = store.list_datasets()
    _check_fields(versions, criteria)
    direct = {v.id: _matches(v, criteria) for v in versions}
    direct = {k: n for k, n in direct.items() if n}
    by_id = {v.id: v for v in versions}
    hit = set(direct)
    frontier = list(direct)
    while frontier:
        parent = frontier.pop()
        for child in (v.id for v in versions if v.parent_id == parent and v.id not in hit):
            hit.add(child)
            frontier.append(child)
    return sorted((by_id[i] for i in hit), key=lambda v: (_depth(v, by_id), v.created_at or 0, v.id)), direct


def _depth(version: DatasetVersion, by_id: dict[str, DatasetVersion]) -> int:
    depth = 0
    while version.parent_id in by_id:
        version, depth = by_id[version.parent_id], depth + 1
    return depth


def _check_fields(versions: list[DatasetVersion], criteria: Criteria) -> None:
    """A --where column no version has is a typo, not a request that matched nothing."""
    columns = {c for v in versions for c in v.columns}
    unknown = sorted(set(criteria.fields) - columns)
    if unknown:
        raise InputError(f"no dataset version has a column {', '.join(unknown)}",
                         f"columns: {', '.join(sorted(columns)) or 'none (no datasets yet)'}")


def _matches(version: DatasetVersion, criteria: Criteria) -> int:
    return sum(int(matching.row_mask(t, criteria).sum()) for t in read_splits(version).values())


def erase(store: Store, criteria: Criteria, dry_run: bool = False, retrain: bool = False,
          confirm: Callable[[ErasureResult], None] | None = None) -> ErasureResult:
    """Carry out (or with `dry_run` only plan) the erasure; see the module docstring for the order of things.

    `confirm` is shown the plan before anything changes and may raise to stop (the CLI asks there): the affected
    set is computed once, since finding it reads every split of every version.
    """
    erasure = f"er-{uuid.uuid4().hex[:10]}"
    versions, direct = affected(store, criteria)
    models = [m for m in store.list_models() if m["dataset_id"] in {v.id for v in versions}]
    plan = _plan(store, erasure, versions, direct, models)
    if dry_run:
        return plan
    if confirm is not None:
        confirm(plan)
    changes, entries, requests = _carry_out(store, versions, direct, models, criteria, erasure)
    digest, salt = criteria.receipt()
    folder = store.workspace.home / "erasures" / erasure
    if retrain:
        entries = [_write_config(store, folder, e) for e in entries]
    result = ErasureResult(erasure=erasure, dry_run=False, matched_rows=sum(direct.values()), versions=changes,
                           models=entries, requests_removed=requests, receipt_salt=salt,
                           report=str(folder / "report.json"))
    _finish(store, result, criteria, digest, folder)
    return result


def _plan(store: Store, erasure: str, versions: list[DatasetVersion], direct: dict[str, int],
          models: list[dict]) -> ErasureResult:
    """What the erasure would do, before anything changes: what --dry-run prints and `confirm` is asked about."""
    planned = [VersionChange(old=v.id, name=v.name, matched=direct.get(v.id, 0), rows_before=v.rows,
                             rows_after=v.rows - direct.get(v.id, 0), new=None, how="planned") for v in versions]
    return ErasureResult(erasure=erasure, dry_run=True, matched_rows=sum(direct.values()), versions=planned,
                         models=[_retrain_entry(store, m, {}) for m in models])


def _carry_out(store: Store, versions: list[DatasetVersion], direct: dict[str, int], models: list[dict],
               criteria: Criteria, erasure: str) -> tuple[list[VersionChange], list[Retrain], int]:
    """Quarantine, replace, delete. The database is compacted once, at the end (a VACUUM rewrites all of it), and
    also when a step failed, so the rows deleted by then leave no copy in free pages or the WAL."""
    try:
        for model in models:  # first: should anything below fail, no model of the subject's data stays servable
            store.set_stage(model["id"], QUARANTINED)
        changes = _replace_all(store, versions, direct, criteria, erasure)
        replaced = {c.old: c.new for c in changes}
        for version in versions:
            delete(store, version.id, force=True, scrub=False)
        entries = [_retrain_entry(store, m, replaced) for m in models]
        requests = store.delete_requests_quoting(criteria.values())
    finally:
        erased_rows.compact(store)
    return changes, entries, requests


def _replace_all(store: Store, versions: list[DatasetVersion], direct: dict[str, int], criteria: Criteria,
                 erasure: str) -> list[VersionChange]:
    """New versions without the rows, parents first, so a child is prepared again from its parent's replacement."""
    replaced: dict[str, str | None] = {}
    changes = []
    for version in versions:
        parent_changed = version.parent_id in replaced
        new_parent = replaced.get(version.parent_id) if parent_changed else version.parent_id
        if parent_changed and new_parent is None:
            new, how = None, "deleted"  # its parent lost every row: nothing is left to derive it from
        elif parent_changed and _prep_config(version) is not None:
            new, how = _prepare_again(store, version, new_parent, criteria, erasure)
        else:
            new, how = _filtered(store, version, new_parent, criteria, erasure), "filtered"
        replaced[version.id] = new.id if new else None
        changes.append(VersionChange(old=version.id, name=version.name, matched=direct.get(version.id, 0),
                                     rows_before=version.rows, rows_after=new.rows if new else 0,
                                     new=new.id if new else None, how=how if new else "deleted"))
    return changes


def _prep_config(version: DatasetVersion) -> PrepConfig | None:
    """The config that prepared this version, or None when it was not made by `tunelab data prepare` (whose
    `missing` step always runs)."""
    if version.parent_id is None or not any(s.get("name") == "missing" for s in version.steps):
        return None
    try:
        return PrepConfig.model_validate(version.config)
    except ValidationError:
        return None


def _prepare_again(store: Store, version: DatasetVersion, parent: str, criteria: Criteria,
                   erasure: str) -> tuple[DatasetVersion | None, str]:
    """The version prepared again from its parent's replacement; a row that still matches is filtered out. Should
    its config no longer fit (an evaluation set it checked leakage against is gone), its own rows are filtered."""
    try:
        new = prepare(store, parent, _prep_config(version))
    except TunelabError as exc:
        if "removed every row" in exc.message:
            return None, "deleted"
        say(f"note: {version.id} cannot be prepared again ({exc.message}); filtering its rows instead")
        return _filtered(store, version, parent, criteria, erasure), "filtered"
    if not _matches(new, criteria):
        return new, "prepared again"
    filtered = _filtered(store, new, parent, criteria, erasure)
    delete(store, new.id, force=True, scrub=False)  # `_carry_out` compacts at the end
    return filtered, "prepared again"


def _filtered(store: Store, version: DatasetVersion, parent: str | None, criteria: Criteria,
              erasure: str) -> DatasetVersion | None:
    """The version's rows without the matching ones, as a new version (None when no row is left)."""
    tables = {}
    for split, table in read_splits(version).items():
        kept = table.filter(~matching.row_mask(table, criteria))
        if kept.num_rows:
            tables[split] = kept
    if not tables:
        return None
    writer = VersionWriter(store)
    try:
        rejects, rejected = _side_file(writer, version, criteria)
        rows = sum(t.num_rows for t in tables.values())
        steps = [*version.steps, {"name": "erase", "rows_in": version.rows, "rows_out": rows, "erasure": erasure}]
        return writer.commit(name=version.name, kind=version.kind, tables=tables, parent_id=parent,
                             identity={"erasure_of": version.id, "config": version.config}, sources=version.sources,
                             steps=steps, config=version.config, rejected=rejected, rejects_path=rejects,
                             pii_redacted=version.pii_redacted, is_eval_set=version.is_eval_set)
    except BaseException:
        writer.discard()
        raise


def _side_file(writer: VersionWriter, version: DatasetVersion, criteria: Criteria) -> tuple[str | None, int]:
    """The rejects (import) or dropped rows (prepare) file without the lines that quote a value."""
    if not version.rejects_path or not Path(version.rejects_path).exists():
        return None, version.rejected
    source = Path(version.rejects_path)
    target = writer.file(source.name)
    dropped = matching.scrub_lines(source, target, criteria.values())
    return str(target), version.rejected - dropped


def _retrain_entry(store: Store, model: dict, replaced: dict[str, str | None]) -> Retrain:
    return Retrain(model=model["id"], name=model["name"], run=model["run_id"], old_dataset=model["dataset_id"],
                   new_dataset=replaced.get(model["dataset_id"]))


def _write_config(store: Store, folder: Path, entry: Retrain) -> Retrain:
    """A train.yaml: the run's config as it was given, on the dataset that replaced the erased one."""
    if entry.run is None or entry.new_dataset is None:
        return entry  # no run recorded, or no rows left to train on
    given = dict(store.get_run(entry.run)["config_given"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"retrain-{entry.model}.yaml"
    path.write_text(f"# tunelab train {path}\n" + yaml.safe_dump({**given, "dataset": entry.new_dataset},
                                                                    sort_keys=False))
    return entry.model_copy(update={"config": str(path), "command": f"tunelab train {path}"})


def _finish(store: Store, result: ErasureResult, criteria: Criteria, digest: str, folder: Path) -> None:
    """The audit row (counts and a digest, never the values), the report file, and the quarantined models' cards."""
    store.audit("data.erase", result.erasure, {
        **criteria.describe(), "digest": digest, "rows": result.matched_rows,
        "versions": {c.old: c.new for c in result.versions}, "models": [m.model for m in result.models],
        "requests": result.requests_removed})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(result.model_copy(update={"receipt_salt": None}).model_dump_json(indent=2))
    _refresh_cards(store, (m.model for m in result.models))


def _refresh_cards(store: Store, model_ids: Iterable[str]) -> None:
    from tunelab.govern import cards

    for model_id in model_ids:
        cards.refresh(store, model_id)


def quarantine_reason(store: Store, model_id: str) -> str | None:
    """The erasure that quarantined a model, from the audit log (which keeps no values), or None."""
    from tunelab.store import audit as chain

    for row in reversed(chain.entries(store.engine, action="data.erase")):
        if model_id in row["detail"].get("models", []):
            return row["target"]
    return None
