"""One exception tree for mistakes a user can fix.

The CLI turns a `TunelabError` into a short message and exit code 2; the HTTP API turns it into a JSON error.
Anything else is a bug in tunelab and keeps its traceback.
"""

from __future__ import annotations


class TunelabError(Exception):
    """A problem the user can fix: the message says what is wrong, the hint what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InputError(TunelabError, ValueError):
    """Bad input: a file, a record, a config key or a command-line value."""


class NotFoundError(TunelabError, LookupError):
    """A dataset, model or file that does not exist; the message lists what does."""


class ConflictError(TunelabError):
    """An action refused because of the state of the workspace (e.g. a model still uses a dataset)."""
