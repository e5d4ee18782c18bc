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
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    else:
        say(human)


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
    paths: Annotated[list[str], typer.Argument(help="Files or folders; SPLIT=PATH keeps a split (train, validation, test).")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the first file's name).")] = None,
    format: Annotated[str, typer.Option("--format", help="auto, chat, instruction, completion or classification.")] = "auto",
    map: Annotated[list[str] | None, typer.Option("--map", help="Rename a column: COLUMN=FIELD (repeatable).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on any bad record instead of rejecting it.")] = False,
    eval_set: Annotated[bool, typer.Option("--eval-set", help="Register as an evaluation set (leakage checks).")] = False,
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


def main() -> None:
    try:
        app()
    except TunelabError as exc:
        say(f"[red]error:[/red] {exc.message}")
        if exc.hint:
            say(f"hint: {exc.hint}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
