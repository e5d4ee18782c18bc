"""Docs that cannot drift: every config key is in the README, every example config is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.config import load_config
from tunelab.data.prep_config import PrepConfig
from tunelab.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        if hasattr(field.annotation, "model_fields"):
            yield from _keys(field.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


@pytest.mark.parametrize("key", [*_keys(PrepConfig), *_keys(TrainConfig)])
def test_every_config_key_is_documented_in_the_readme(key):
    assert f"| `{key}` |" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/**/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_configs_are_valid_and_say_how_to_run_them(path):
    load_config(TrainConfig if path.name.startswith("train") else PrepConfig, path)
    assert path.read_text().startswith("# tunelab ")


def test_readme_gives_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_the_governance_policy_table_is_the_one_in_the_code():
    from tunelab.govern.policy import markdown_table

    text = (ROOT / "docs" / "governance.md").read_text()
    start = text.index("<!-- policy table: generated from tunelab.govern.policy.markdown_table() -->\n")
    table = text[text.index("\n", start) + 1:text.index("\n<!-- end of policy table -->")]
    assert table == markdown_table(), "regenerate the table with tunelab.govern.policy.markdown_table()"
