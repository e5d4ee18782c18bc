"""Conventions every command follows: --help shows an example, --json is one object, mistakes exit 2 cleanly."""

from __future__ import annotations

import json

import pytest
from typer.main import get_command

from tunelab.cli import app


def _commands(group=None, prefix=()):
    group = group or get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(_commands())


def test_there_are_commands():
    assert ("data", "import") in COMMANDS and len(COMMANDS) >= 6


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(cli, command):
    done = cli(*command, "--help")
    assert done.returncode == 0
    assert "Example: tunelab " + " ".join(command) in " ".join(done.stdout.split())


def test_json_output_is_exactly_one_object_and_progress_stays_on_stderr(cli, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"text {i}", "label": "a"}) for i in range(5)) + "\n")
    imported = cli("data", "import", str(path), "--json")
    assert imported.returncode == 0
    assert json.loads(imported.stdout)["rows"] == 5 and imported.stdout.count("\n") == 1
    prepared = cli("data", "prepare", "d", "--set", "pii.enabled=false", "--json")
    assert prepared.returncode == 0 and json.loads(prepared.stdout)["splits"]
    assert "dedup_exact" in prepared.stderr  # the step log goes to stderr


@pytest.mark.parametrize(("args", "message"), [
    (("data", "show", "nope"), "no dataset 'nope'"),
    (("data", "import", "/no/such/file.csv"), "no such file"),
    (("data", "import", "{data}", "--map", "oops"), "is not COLUMN=FIELD"),
    (("data", "import", "{data}", "--format", "tabular"), "unknown --format"),
    (("data", "prepare", "d", "--set", "dedup.treshold=0.9"), "dedup.treshold: unknown key"),
    (("data", "prepare", "d", "--set", "dedup.threshold=1.5"), "dedup.threshold"),
    (("data", "prepare", "d", "--config", "{yaml}"), "split.group_column"),
    (("data", "export", "d", "--split", "holdout"), "has no split 'holdout'"),
    (("data", "export", "d", "--format", "xlsx", "--out", "x.xlsx"), "unknown --format"),
])
def test_user_mistakes_exit_2_with_a_message_and_no_traceback(cli, tmp_path, args, message):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "hello", "label": "a"}) + "\n")
    yaml = tmp_path / "prep.yaml"
    yaml.write_text("pii:\n  enabled: false\nsplit:\n  group_column: customer\n")
    assert cli("data", "import", str(data)).returncode == 0
    done = cli(*(a.format(data=data, yaml=yaml) for a in args))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
