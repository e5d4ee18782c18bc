"""Who may call what: the API key of every request, its rate limit, the models it may see, admin rights.

A key limited to some models gets 404 for the others, and 404s and /v1/models list only what it may see: a key
learns nothing about models it cannot use.
"""

from __future__ import annotations

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tunelab.errors import RateLimitError
from tunelab.govern.keys import ApiKey, authenticate
from tunelab.serve.errors import ApiError
from tunelab.serve.middleware import record_of
from tunelab.serve.registry import TASKS, Served
from tunelab.serve.state import get_server


async def api_key(request: Request) -> ApiKey:
    """The request's key (401 without a valid one), counted against its rate limit (429 beyond it)."""
    server = get_server(request)
    key = await run_in_threadpool(authenticate, server.store, request.headers.get("authorization"))
    record_of(request).key_id = key.id
    wait = server.limiter.check(key)
    if wait is not None:
        raise RateLimitError(f"key tl-{key.id} is over its rate limit of {key.rate_limit} requests per minute",
                             f"retry in {wait:.1f} s", retry_after=wait)
    return key


async def admin_key(key: ApiKey = Depends(api_key)) -> ApiKey:
    if not key.admin:
        raise ApiError(403, f"key tl-{key.id} may not load or unload models", code="permission_denied")
    return key


def visible(key: ApiKey, entry: Served) -> bool:
    return any(key.allows(name) for name in entry.names)


def model_for(request: Request, key: ApiKey, name: str, task: str) -> Served:
    """The served model a request names, if the key may use it and it does `task`; 404 lists what the key may see."""
    registry = get_server(request).registry
    entry = registry.get(name)
    if entry is None or not visible(key, entry):
        names = [s.id for s in registry.served() if visible(key, s)]
        raise ApiError(404, f"The model `{name}` does not exist. Models: {', '.join(names) or 'none'}",
                       param="model", code="model_not_found")
    if entry.task != task:
        raise ApiError(400, f"model {entry.id} serves {TASKS[entry.task]}, not {TASKS[task]}", param="model",
                       code="wrong_model_task")
    record_of(request).model = entry.id
    return entry
