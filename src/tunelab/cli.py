"""The `tunelab` command: parse arguments, call a service function, print the result. Nothing else.

Conventions every command follows: `--json` prints exactly one JSON object on stdout (human text and progress go to
stderr); a user mistake exits with code 2 and a short message, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tunelab import data as data_service
from tunelab.errors import InputError, TunelabError
from tunelab.progress import say
from tunelab.store import open_store

app = typer.Typer(help="tunelab: from raw business text to a fine-tuned, evaluated and served model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Import, prepare, inspect, export and delete datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    """The command's result on stdout: one JSON object with --json, readable text otherwise."""
    sys.stdout.write((json.dumps(result, default=str) if as_json else human) + "\n")


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        if not sep or not column or not field:
            raise InputError(f"--map {pair!r} is not COLUMN=FIELD", "e.g. --map category=label")
        mapping[column] = field
    return mapping


@data_app.command("import")
def data_import(
    paths: Annotated[list[str], typer.Argument(help="Files or folders; SPLIT=PATH keeps a split (train, validation, "
                                                   "test).")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the first file's name).")] = None,
    format: Annotated[str, typer.Option("--format", help="auto, chat, instruction, completion or "
                                                     "classification.")] = "auto",
    map: Annotated[list[str] | None, typer.Option("--map", help="Rename a column: COLUMN=FIELD (repeatable).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on any bad record instead of rejecting it.")] = False,
    eval_set: Annotated[bool, typer.Option("--eval-set", help="Register as an evaluation set (leakage "
                                                         "checks).")] = False,
    max_record_bytes: Annotated[int, typer.Option(help="Largest record accepted, in bytes.")] = 1_000_000,
    as_json: JsonFlag = False,
) -> None:
    """Import CSV, TSV, JSONL, JSON, Parquet or a `save_to_disk` folder as a new dataset version.

    Example: tunelab data import sms.tsv --map SMS=text --map Label=label --name sms-spam
    """
    result = data_service.import_data(open_store(), paths, name=name, fmt=format, mapping=_mapping(map or []),
                                      strict=strict, eval_set=eval_set, max_record_bytes=max_record_bytes)
    human = [f"imported {result.version.rows:,} rows as {result.version.kind} dataset {result.version.id} "
             f"({result.version.name}); {result.detection.reason}"]
    human += [f"  note: {n}" for n in result.notes]
    if result.rejected:
        human.append(f"  rejected {result.rejected:,} record(s); see {result.rejects_path}")
        human += [f"    {p}" for p in result.problems]
    emit(result.to_json(), as_json, "\n".join(human))


@data_app.command("prepare")
def data_prepare(
    dataset: Annotated[str, typer.Argument(help="Dataset id, id prefix or name.")],
    config: Annotated[Path | None, typer.Option("--config", help="A prep.yaml (see README: data prepare).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Clean, deduplicate, de-identify, split and leak-check a dataset into a new version.

    Example: tunelab data prepare sms-spam --set dedup.threshold=0.9 --set split.group_column=customer_id
    """
    from tunelab.config import load_config
    from tunelab.data.prep_config import PrepConfig

    version = data_service.prepare(open_store(), dataset, load_config(PrepConfig, config, set_))
    result = {**version.summary(), "card": str(Path(version.path) / "card.html")}
    splits = ", ".join(f"{k} {v:,}" for k, v in version.splits.items())
    emit(result, as_json, f"prepared {version.id} from {version.parent_id}: {splits}\n  card: {result['card']}")


@data_app.command("list")
def data_list(as_json: JsonFlag = False) -> None:
    """List dataset versions, oldest first.

    Example: tunelab data list --json
    """
    versions = open_store().list_datasets()
    lines = [f"{v.id}  {v.name:<30} {v.kind:<14} {v.rows:>9,} rows  parent={v.parent_id or '-'}" for v in versions]
    emit({"datasets": [v.summary() for v in versions]}, as_json, "\n".join(lines) or "no datasets yet")


@data_app.command("show")
def data_show(
    dataset: Annotated[str, typer.Argument(help="Dataset id, id prefix or name.")],
    card: Annotated[bool, typer.Option("--card", help="Print the path of the HTML card (written if missing).")] = False,
    open_: Annotated[bool, typer.Option("--open", help="With --card: open it in a browser.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a version: shape, splits, counts, steps with statistics, sample rows.

    Example: tunelab data show sms-spam --card
    """
    store = open_store()
    if card:
        path = data_service.card_path(store, store.get_dataset(dataset))
        if open_:
            import webbrowser

            webbrowser.open(path.as_uri())
        emit({"card": str(path)}, as_json, str(path))
        return
    info = data_service.show(store, dataset)
    emit(info, as_json, _describe(info))


def _describe(info: dict[str, Any]) -> str:
    lines = [f"{info['dataset']}  {info['name']}  ({info['kind']}, parent {info['parent'] or '-'})",
             "splits: " + ", ".join(f"{k} {v:,}" for k, v in info["splits"].items())]
    for step in info["steps"]:
        extra = {k: v for k, v in step.items() if k not in ("name", "rows_in", "rows_out")
                 and not isinstance(v, (list, dict))}
        lines.append(f"  {step['name']:<12} {step['rows_in']:>9,} -> {step['rows_out']:>9,}  {extra}")
    for split, rows in info["samples"].items():
        lines += [f"  [{split}] {json.dumps(row, ensure_ascii=False)[:160]}" for row in rows]
    lines.append(f"card: {info['card']}")
    return "\n".join(lines)


@data_app.command("export")
def data_export(
    dataset: Annotated[str, typer.Argument(help="Dataset id, id prefix or name.")],
    split: Annotated[str, typer.Option("--split", help="train, validation or test.")] = "train",
    format: Annotated[str, typer.Option("--format", help="jsonl, parquet or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: stdout).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export one split of a version.

    Example: tunelab data export sms-spam --split test --format csv --out test.csv
    """
    if as_json and out is None:
        raise InputError("--json needs --out: the data itself would be on stdout", "add --out PATH")
    result = data_service.export(open_store(), dataset, split, format, out, sys.stdout.buffer)
    if out is not None:
        emit(result, as_json, f"wrote {result['rows']:,} rows to {out}")


@data_app.command("delete")
def data_delete(
    dataset: Annotated[str, typer.Argument(help="Dataset id, id prefix or name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete even if models were trained on it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a version: its files and records, with no copy of its rows left in the workspace.

    Example: tunelab data delete ds-1a2b3c4d5e6f --yes
    """
    store = open_store()
    version = store.get_dataset(dataset)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting {version.id} needs confirmation", "pass --yes")
        typer.confirm(f"delete {version.id} ({version.name}, {version.rows:,} rows)?", abort=True)
    result = data_service.delete(store, version.id, force=force)
    emit(result, as_json, f"deleted {result['deleted']} ({result['rows']:,} rows)")


def main() -> None:
    try:
        app()
    except TunelabError as exc:
        say(f"error: {exc.message}")
        if exc.hint:
            say(f"hint: {exc.hint}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
