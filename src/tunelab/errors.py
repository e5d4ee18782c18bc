"""One exception tree for mistakes a user can fix.

The CLI turns a `TunelabError` into a short message and exit code 2; the HTTP API turns it into a JSON error with the
class's `status` as the HTTP code. Anything else is a bug in tunelab and keeps its traceback.
"""

from __future__ import annotations


class TunelabError(Exception):
    """A problem the user can fix: the message says what is wrong, the hint what to do next."""

    status = 500  # the HTTP status the server answers with; subclasses narrow it

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InputError(TunelabError, ValueError):
    """Bad input: a file, a record, a config key or a command-line value."""

    status = 400


class NotFoundError(TunelabError, LookupError):
    """A dataset, model or file that does not exist; the message lists what does."""

    status = 404


class ConflictError(TunelabError):
    """An action refused because of the state of the workspace (e.g. a model still uses a dataset)."""

    status = 409


class AuthError(TunelabError):
    """A request without a valid API key: missing, malformed, unknown, wrong, revoked or expired.

    The message never repeats the key that was presented, since it ends up in responses and logs.
    """

    status = 401


class PermissionDeniedError(TunelabError):
    """A known principal asked for an action its role in the project does not allow (tunelab.govern.policy)."""

    status = 403


class RateLimitError(TunelabError):
    """A key sent more requests than its rate limit allows; `retry_after` is in seconds."""

    status = 429

    def __init__(self, message: str, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after
