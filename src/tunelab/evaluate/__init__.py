"""Evaluation: score a fine-tuned model against its base and others, check forgetting and bias, explain, report.

Names are imported on first use, so `import tunelab.evaluate` stays cheap for the CLI.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"Decoding": "contenders", "EvalOptions": "service", "evaluate": "service", "latest_report": "service"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"tunelab.evaluate.{_EXPORTS[name]}"), name)
