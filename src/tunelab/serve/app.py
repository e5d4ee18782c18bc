"""The FastAPI app: one router per endpoint, the error handlers, the body limit and the request record.

`serve()` is what `tunelab serve` calls: it loads the models first (a wrong reference fails before the server
starts), then runs uvicorn. `create_app()` builds the app around a registry, for tests and embedding.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from tunelab.govern.keys import RateLimiter
from tunelab.models import quiet_transformers
from tunelab.progress import say
from tunelab.serve.auth import Caller, inference
from tunelab.serve.chat.router import router as chat_router
from tunelab.serve.classifications.router import router as classifications_router
from tunelab.serve.completions.router import router as completions_router
from tunelab.serve.embeddings.router import router as embeddings_router
from tunelab.serve.entities.router import router as entities_router
from tunelab.serve.errors import install_error_handlers
from tunelab.serve.metrics import CONTENT_TYPE, Metrics
from tunelab.serve.middleware import LimitBody, RecordRequests
from tunelab.serve.models.router import router as models_router
from tunelab.serve.protocol import error_responses
from tunelab.serve.registry import ModelRegistry
from tunelab.serve.requestlog import RequestLogger
from tunelab.serve.settings import ServeSettings
from tunelab.serve.state import Server, get_server
from tunelab.serve.watch import StageWatch
from tunelab.store import Store

system_router = APIRouter(tags=["system"])


@system_router.get("/health")
async def health(request: Request) -> dict[str, object]:
    """Liveness for load balancers: no key needed, says only how many models are loaded."""
    return {"status": "ok", "models": len(get_server(request).registry.served())}


@system_router.get("/metrics", response_class=Response, responses=error_responses())
async def metrics(request: Request, caller: Caller = Depends(inference)) -> Response:
    """Prometheus text: requests by endpoint, model and status, latency, tokens, errors, batch sizes; the counters
    of the caller's project only."""
    return Response(get_server(request).metrics.render(caller.project), media_type=CONTENT_TYPE)


def create_app(store: Store, registry: ModelRegistry, settings: ServeSettings,
               metrics: Metrics | None = None) -> FastAPI:
    """The app around `registry`; it starts the request log and the stage watch and, on shutdown, closes them and
    the registry."""
    metrics = metrics or Metrics()
    request_log = RequestLogger(store, texts=settings.log_texts)
    watch = StageWatch(registry, settings.stage_check_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        request_log.start()
        watch.start()
        try:
            yield
        finally:
            watch.close()
            request_log.close()
            registry.close()

    app = FastAPI(title="tunelab", summary="OpenAI-compatible API for tunelab's fine-tuned models.",
                  lifespan=lifespan)
    app.state.server = Server(store, settings, registry, metrics, request_log, RateLimiter())
    install_error_handlers(app)
    for router in (models_router, chat_router, completions_router, embeddings_router, classifications_router,
                   entities_router, system_router):
        app.include_router(router)
    app.add_middleware(LimitBody, max_bytes=settings.max_body_bytes)
    app.add_middleware(RecordRequests, metrics=metrics, request_log=request_log)  # outermost: sees every answer
    return app


def serve(store: Store, settings: ServeSettings) -> None:
    """Load `settings.models`, then answer on host:port until interrupted."""
    import uvicorn

    _log_to_stderr()
    quiet_transformers()
    metrics = Metrics()
    registry = ModelRegistry(store, settings, on_batch=metrics.batch_rows.observe)
    try:
        for ref in settings.models:
            entry = registry.load(ref)
            say(f"loaded {entry.id} ({entry.kind}, {entry.task})" + (f" on {entry.parent}" if entry.parent else ""))
    except BaseException:
        registry.close()
        raise
    app = create_app(store, registry, settings, metrics)
    uvicorn.run(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=5)


def _log_to_stderr() -> None:
    """The server's own messages (failures with tracebacks, ignored request fields) next to uvicorn's."""
    logger = logging.getLogger("tunelab.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
