"""The real `tunelab` command run in this process: `tunelab.cli.main` with its argv, stdin, stdout and stderr swapped
for the call's own (click's test isolation). It takes milliseconds where a subprocess takes seconds (importing torch
and transformers again), so a test can walk dozens of commands; the result looks like `subprocess.run`'s."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from tunelab.cli import main


def run_cli(*args: str, input: str | None = None, env: dict[str, str | None] | None = None
            ) -> subprocess.CompletedProcess:
    """`tunelab ARGS...` as a user types it: exit code 2 and a message for a mistake, never a traceback. `env`
    changes the environment for this command only (None removes a variable)."""
    argv = sys.argv
    with CliRunner().isolation(input=input, env=env) as (stdout, stderr, _):
        sys.argv = ["tunelab", *args]
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        out, err = stdout.getvalue().decode(), stderr.getvalue().decode()
    return subprocess.CompletedProcess(["tunelab", *args], code, out, err)
