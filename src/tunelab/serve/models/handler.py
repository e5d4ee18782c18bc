"""Listing the served models (only those the caller sees), and loading and unloading them at runtime, in the
caller's project: a model of another project is not found, and the audit rows name the caller."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tunelab.serve.auth import Caller
from tunelab.serve.middleware import record_of
from tunelab.serve.models.protocol import LoadModelRequest, ModelCard, ModelDeleted, ModelList
from tunelab.serve.registry import Served
from tunelab.serve.state import get_server


def card(entry: Served) -> ModelCard:
    return ModelCard(id=entry.id, created=entry.created, root=entry.root, parent=entry.parent, task=entry.task,
                     kind=entry.kind, labels=entry.labels)


def list_models(request: Request, caller: Caller) -> ModelList:
    served = get_server(request).registry.served()
    return ModelList(data=[card(s) for s in served if caller.sees(s)])


async def load_model(request: Request, body: LoadModelRequest, caller: Caller) -> ModelCard:
    """Load off the event loop (seconds); the registry's lock serialises loads and unloads."""
    server = get_server(request)
    store = caller.store(server)
    entry = await run_in_threadpool(server.registry.load, body.model, store)
    await run_in_threadpool(store.audit, "serve.load", entry.id, {"ref": body.model})
    record_of(request).model = entry.id
    return card(entry)


async def unload_model(request: Request, ref: str, caller: Caller) -> ModelDeleted:
    server = get_server(request)
    entry = await run_in_threadpool(server.registry.unload, ref, caller.project)
    await run_in_threadpool(caller.store(server).audit, "serve.unload", entry.id, {})
    record_of(request).model = entry.id
    return ModelDeleted(id=entry.id)
