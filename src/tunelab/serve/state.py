"""What every route reaches through `request.app.state.server`: the store, the models, the limits, the counters."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from tunelab.govern.keys import RateLimiter
from tunelab.serve.metrics import Metrics
from tunelab.serve.registry import ModelRegistry
from tunelab.serve.requestlog import RequestLogger
from tunelab.serve.settings import ServeSettings
from tunelab.store import Store


@dataclass
class Server:
    store: Store
    settings: ServeSettings
    registry: ModelRegistry
    metrics: Metrics
    request_log: RequestLogger
    limiter: RateLimiter


def get_server(request: Request) -> Server:
    return request.app.state.server
