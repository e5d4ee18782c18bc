"""`tunelab data erase` and `tunelab models card`: parse, resolve who acts (`open_as`), call `tunelab.govern`, print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunelab.cli_output import JsonFlag, emit
from tunelab.errors import InputError
from tunelab.govern.access import open_as

if TYPE_CHECKING:
    from tunelab.govern.erasure import ErasureResult


def data_erase(
    where: Annotated[list[str] | None, typer.Option("--where", help="FIELD=VALUE: rows whose column FIELD holds "
                                                    "VALUE (repeatable).")] = None,
    text: Annotated[list[str] | None, typer.Option("--text", help="Rows any of whose text contains VALUE "
                                                   "(repeatable; exact, case-sensitive).")] = None,
    values_file: Annotated[Path | None, typer.Option("--values-file", help="A file of values, one per line: text "
                                                     "values, or with --field values of that column.")] = None,
    field: Annotated[str | None, typer.Option("--field", help="With --values-file: the column the values are "
                                              "of.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say which versions and models it would "
                                          "touch.")] = False,
    retrain: Annotated[bool, typer.Option("--retrain", help="Write a train.yaml per quarantined model (on the new "
                                          "data) and print the `tunelab train` commands.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Erase a data subject's rows from every dataset version that holds them, raw and derived, and quarantine the
    models trained on them.

    Example: tunelab data erase --where customer_id=cust-0042 --retrain --yes
    """
    from tunelab.govern import erasure, matching

    criteria = matching.parse(where or [], text or [], values_file, field)
    store = open_as("data.delete", "erasure")
    # a bad request fails in `erase` before the question; the plan asked about is the one carried out
    result = erasure.erase(store, criteria, dry_run=dry_run, retrain=retrain, confirm=None if yes else _ask)
    emit(result.model_dump(mode="json"), as_json, _erasure_text(result))


def _ask(plan: ErasureResult) -> None:
    """Confirm the plan on a terminal; without one the erasure needs --yes."""
    if not sys.stdin.isatty():
        raise InputError("an erasure deletes dataset versions and quarantines models: it needs confirmation",
                         "pass --yes (or --dry-run to see what it would do)")
    typer.confirm(f"erase {plan.matched_rows:,} row(s), replacing {len(plan.versions)} dataset version(s), and "
                  f"quarantine {len(plan.models)} model(s)?", abort=True)


def _erasure_text(result: ErasureResult) -> str:
    head = "dry run" if result.dry_run else f"erasure {result.erasure}"
    verb = "would replace" if result.dry_run else "replaced"
    lines = [f"{head}: {result.matched_rows:,} matching row(s) in {len(result.versions)} affected version(s) (a raw "
             f"row and its prepared copy count twice); {verb} them"]
    lines += [f"  {c.old} {c.name}: {c.rows_before:,} -> {c.rows_after:,} rows ({c.how})"
              + (f" -> {c.new}" if c.new else "") for c in result.versions]
    if result.models:
        lines.append(("would quarantine" if result.dry_run else "quarantined") + " (retrain them):")
        lines += [f"  {m.model} {m.name}: trained on {m.old_dataset}"
                  + (f"; now {m.new_dataset}" if m.new_dataset else "; no rows left to train on")
                  + (f"\n    {m.command}" if m.command else "") for m in result.models]
    if not result.dry_run:
        lines.append(f"request-log rows removed: {result.requests_removed}; report: {result.report}")
        lines.append(f"receipt salt (not stored; with the values it reproduces the audited digest): "
                     f"{result.receipt_salt}")
    return "\n".join(lines)


def models_card(model: Annotated[str, typer.Argument(help="Model id, name or NAME@STAGE.")]) -> None:
    """Print a model's card: the Hugging Face README.md its folder and exports carry.

    Example: tunelab models card m-1a2b3c4d5e > README.md
    """
    from tunelab.govern import cards

    sys.stdout.write(cards.render(open_as("model.read", model), model))


def register(data_app: typer.Typer, models_app: typer.Typer) -> None:
    """Add `data erase` and `models card` to their groups."""
    data_app.command("erase")(data_erase)
    models_app.command("card")(models_card)
