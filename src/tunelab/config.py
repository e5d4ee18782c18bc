"""Load YAML configs into pydantic models; every problem is reported at once, naming the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tunelab.errors import InputError

M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    """Base for config sections: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _describe(errors: list[dict[str, Any]], source: str) -> str:
    lines = []
    for error in errors:
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {source}: {key}: unknown key")
        else:
            lines.append(f"  {source}: {key}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


def parse_config(model: type[M], data: dict[str, Any] | None, source: str) -> M:
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        fields = ", ".join(model.model_fields)
        raise InputError(f"{source} has {exc.error_count()} problem(s):\n" + _describe(exc.errors(), source),
                         f"the top-level keys are: {fields}; see the README for each") from None


def load_config(model: type[M], path: Path | None, overrides: list[str] | None = None) -> M:
    """Read `path` (or start empty), apply `key.sub=value` overrides, validate."""
    data: dict[str, Any] = {}
    source = str(path) if path else "config"
    if path is not None:
        if not path.exists():
            raise InputError(f"{path}: no such config file", "check the path")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc})", "check indentation and quoting") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a mapping of keys to values, got a {type(data).__name__}")
    for override in overrides or []:
        key, sep, value = override.partition("=")
        if not sep:
            raise InputError(f"--set {override!r} is not KEY=VALUE", "e.g. --set dedup.threshold=0.9")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return parse_config(model, data, source)
