"""Data preparation: import raw files, prepare clean splits, inspect, export and delete dataset versions.

Names are imported on first use, so a worker process that only needs `tunelab.data.pii` does not pay for polars,
pyarrow and the rest of the package.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"ImportResult": "importer", "import_data": "importer", "card_path": "manage", "delete": "manage",
            "export": "manage", "show": "manage", "prepare": "pipeline"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"tunelab.data.{_EXPORTS[name]}"), name)
