"""Who is calling and whether they may: every request's principal, checked in the one policy table.

A request names its caller by an API key (`Authorization: Bearer tl-...`: the key's user, or the key itself, in the
key's project), or, when the server was told to trust a proxy (`--trusted-proxy-header`, `--trusted-proxy`), by the
user name that proxy puts in its header, in the project of the `X-Tunelab-Project` header. The header is believed
only from the trusted addresses; from anywhere else it is ignored and a key is needed.

Then the route's key scope (`inference` or `manage`) and its policy action (`model.infer`, `model.serve`) must both
allow it. Refusals (401, 403) are written to the audit log; answers go to the request log with the caller and project.
A caller sees only the served models of its project (and base models, which belong to none): the others answer 404
and are missing from /v1/models, so a tenant learns nothing of another's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tunelab.errors import AuthError, PermissionDeniedError, RateLimitError
from tunelab.govern.access import check, refuse
from tunelab.govern.credentials import key_principal, proxy_principal
from tunelab.govern.keys import ApiKey, authenticate
from tunelab.govern.principal import DEFAULT_PROJECT, Principal
from tunelab.serve.errors import ApiError
from tunelab.serve.middleware import record_of
from tunelab.serve.registry import TASKS, Served
from tunelab.serve.state import Server, get_server
from tunelab.store import Store

_KEY_ID = re.compile(r"\s*bearer\s+tl-([0-9a-f]{10})\.", re.IGNORECASE)


@dataclass(frozen=True)
class Caller:
    """The principal of one request, the project it acts in, and its key (None when a trusted proxy named it)."""

    principal: Principal
    project: str
    key: ApiKey | None

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.key.scopes if self.key else ("inference", "manage")  # a proxied user: its role decides

    def allows(self, model: str) -> bool:
        """A key limited to some models may call only those."""
        return self.key is None or self.key.allows(model)

    def sees(self, entry: Served) -> bool:
        """A served model of the caller's project (or of none: a base model) that its key may call."""
        return entry.project in (None, self.project) and any(self.allows(name) for name in entry.names)

    def store(self, server: Server) -> Store:
        """The server's store acting for this caller: its audit rows name the caller and the project."""
        return server.store.in_project(self.project, self.principal.name)


def _identify(server: Server, request: Request) -> Caller:
    """The caller, from the trusted proxy's header or the API key; AuthError (audited) otherwise."""
    settings, headers = server.settings, request.headers
    proxied = settings.trusted_proxy_header and headers.get(settings.trusted_proxy_header)
    project = headers.get(settings.project_header) or DEFAULT_PROJECT
    client = request.client.host if request.client else None
    claimed = proxied if proxied and settings.trusts(client) else None
    try:
        if claimed:
            return Caller(proxy_principal(server.store, claimed), project, None)
        key = authenticate(server.store, headers.get("authorization"))
        return Caller(key_principal(server.store, key), key.project, key)
    except AuthError as exc:
        match = _KEY_ID.match(headers.get("authorization") or "")
        actor = claimed or (f"tl-{match[1]}" if match else "anonymous")
        # only a trusted proxy may name the project: anyone else's header must not plant rows in a tenant's trail
        trail = project if claimed else DEFAULT_PROJECT
        server.store.in_project(trail, actor).audit("auth.login", request.url.path,
                                                      {"via": "proxy" if claimed else "key", "reason": exc.message},
                                                      outcome="denied")
        raise


def _authorize(server: Server, caller: Caller, scope: str, action: str, path: str) -> None:
    """The key's scope and the caller's role must both allow `action`; a refusal is audited, then raised."""
    store = caller.store(server)
    store.principal = caller.principal
    if scope not in caller.scopes:
        refuse(store, action, path, PermissionDeniedError(
            f"key tl-{caller.key.id} may not {action}: it lacks the `{scope}` scope",
            f"create a key with `tunelab keys create --scope {scope}`"), {"scope": scope})
    check(store, action, path, {"scope": scope})


def _admit(server: Server, request: Request, scope: str, action: str) -> Caller:
    """Identify and authorize in one trip to the thread pool (both read the store); the request record learns the
    caller before a refusal, so the request log names who was refused."""
    caller = _identify(server, request)
    record = record_of(request)
    record.key_id, record.actor, record.project = (caller.key.id if caller.key else None, caller.principal.name,
                                                   caller.project)
    _authorize(server, caller, scope, action, request.url.path)
    return caller


def require(scope: str, action: str) -> Callable[[Request], Awaitable[Caller]]:
    """A route dependency: the request's caller, allowed `action` with a key of `scope`, within its rate limit."""

    async def dependency(request: Request) -> Caller:
        server = get_server(request)
        caller = await run_in_threadpool(_admit, server, request, scope, action)
        wait = server.limiter.check(caller.key) if caller.key else None
        if wait is not None:
            raise RateLimitError(f"key tl-{caller.key.id} is over its rate limit of {caller.key.rate_limit} "
                                 "requests per minute", f"retry in {wait:.1f} s", retry_after=wait)
        return caller

    return dependency


inference = require("inference", "model.infer")
manager = require("manage", "model.serve")


def model_for(request: Request, caller: Caller, name: str, task: str) -> Served:
    """The served model a request names, if the caller sees it and it does `task`; a 404 lists what it sees."""
    registry = get_server(request).registry
    entry = registry.get(name, caller.project)
    if entry is None or not caller.sees(entry):
        why = registry.withdrawn(name, caller.project)
        if why is not None and caller.allows(name):
            raise ApiError(404, f"The model `{name}` is no longer served: {why}", param="model",
                           code="model_withdrawn")
        names = [s.id for s in registry.served() if caller.sees(s)]
        raise ApiError(404, f"The model `{name}` does not exist. Models: {', '.join(names) or 'none'}",
                       param="model", code="model_not_found")
    if entry.task != task:
        raise ApiError(400, f"model {entry.id} serves {TASKS[entry.task]}, not {TASKS[task]}", param="model",
                       code="wrong_model_task")
    record_of(request).model = entry.id
    return entry
