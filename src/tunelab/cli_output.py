"""What every command shares to print its result: `--json` (one JSON object on stdout) or readable text."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def emit(result: dict[str, Any], as_json: bool, human: str) -> None:
    """The command's result on stdout: one JSON object with --json, readable text otherwise."""
    sys.stdout.write((json.dumps(result, default=str) if as_json else human) + "\n")
