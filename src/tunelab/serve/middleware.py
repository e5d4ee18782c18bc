"""Two ASGI middlewares: the body-size limit, and the record every request leaves (metrics and the request log).

Both are plain ASGI rather than Starlette's BaseHTTPMiddleware: the limit must act before FastAPI reads the body, and
the record must see the end of a streamed answer, which BaseHTTPMiddleware returns before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunelab.serve.errors import error_response
from tunelab.serve.metrics import Metrics
from tunelab.serve.requestlog import RequestLogger

_WITH_BODY = {"POST", "PUT", "PATCH"}


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes: auth sets the key, handlers the model, tokens and texts."""

    status: int = 500  # until a response starts: an exception that escaped every handler
    key_id: str | None = None
    actor: str | None = None  # the caller's principal
    project: str | None = None  # the caller's project (None: refused before it was known)
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    request_text: str | None = None
    response_text: str | None = None
    error: str | None = None


def record_of(scope_or_request: Any) -> RequestRecord:
    """The record of a request (Starlette keeps `request.state` in the scope)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return scope.setdefault("state", {}).setdefault("record", RequestRecord())


class RecordRequests:
    """Times every request and, when its answer is over (streams included), counts it and logs /v1 calls."""

    def __init__(self, app: ASGIApp, metrics: Metrics, request_log: RequestLogger) -> None:
        self.app, self.metrics, self.request_log = app, metrics, request_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = record_of(scope)
        started = time.perf_counter()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # answered with a 500 by the outermost handler, which logs the traceback
            record.error = f"internal error: {type(exc).__name__}"
            raise
        finally:
            self._finish(scope, record, time.perf_counter() - started)

    def _finish(self, scope: Scope, record: RequestRecord, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        self.metrics.observe(endpoint, record.model, record.status, seconds, record.prompt_tokens,
                             record.completion_tokens, record.project)
        if scope["path"].startswith("/v1/"):
            self.request_log.log(record.key_id, record.model, endpoint, record.status, seconds * 1000,
                                 record.prompt_tokens, record.completion_tokens, record.request_text,
                                 record.response_text, record.error, actor=record.actor, project=record.project)


class LimitBody:
    """413 for a body over `max_bytes`, by its Content-Length or after reading at most max_bytes + 1 of it.

    The body is read here, before any parsing, and replayed to the app; later `receive` calls (a client that
    disconnects) go straight through.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than the server's limit of {self.max_bytes:,} bytes"
        record_of(scope).error = message
        await error_response(413, message, code="request_too_large")(scope, receive, send)
