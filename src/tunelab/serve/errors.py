"""One error helper: every failure leaves the server as OpenAI's error JSON with the right status, never a traceback.

`{"error": {"message", "type", "param", "code"}}`, as OpenAI and vLLM send it, so OpenAI clients raise their usual
exceptions (`openai.NotFoundError`, `openai.RateLimitError`, ...). Unexpected exceptions are logged here with their
traceback and answered with a generic 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tunelab.errors import TunelabError

logger = logging.getLogger("tunelab.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error"}


class ApiError(Exception):
    """An HTTP answer with no TunelabError of its own: 403, 413, 503 and request-level 400s."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The one place an error body is built."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


def stream_error(exc: Exception) -> dict[str, Any]:
    """The error body for a failure in the middle of a stream, where the status line was sent long ago."""
    if isinstance(exc, ApiError):
        return error_body(exc.status, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, TunelabError):
        return error_body(getattr(exc, "status", 500), str(exc).replace("\n", "; "))
    logger.error("a stream failed", exc_info=exc)
    return error_body(500, "internal server error; the server log has the details")


def _answer(request: Request, status: int, message: str, **fields: Any) -> JSONResponse:
    """The error response, its message noted in the request's record (for the request log)."""
    record = getattr(request.state, "record", None)
    if record is not None:
        record.error = message
    return error_response(status, message, **fields)


def _tunelab_error(request: Request, exc: TunelabError) -> JSONResponse:
    status = getattr(exc, "status", 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return _answer(request, status, str(exc).replace("\n", "; "), code=getattr(exc, "code", None), headers=headers)


def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _answer(request, exc.status, exc.message, param=exc.param, code=exc.code)


def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _answer(request, exc.status_code, str(exc.detail), headers=exc.headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Malformed JSON is a 400 (nothing could be read); a readable body with bad fields is a 422 naming them all."""
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        return _answer(request, 400, "the request body is not valid JSON", code="invalid_json")
    message = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in errors)
    return _answer(request, 422, message, param=_field(errors[0]["loc"]) if errors else None, code="invalid_value")


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _answer(request, 500, "internal server error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TunelabError, _tunelab_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
