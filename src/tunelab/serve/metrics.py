"""Prometheus counters for /metrics: requests, latency, tokens, errors, and how full generation batches are.

Each app has a registry of its own (not prometheus_client's global one), so two apps in one process do not clash.
The model label is a served model's id, or empty: names a client made up never become label values. The project
label is the caller's project (empty when a request was refused before its caller was known), and `render(project)`
leaves out other projects' series, so one tenant does not read another's model ids and traffic; the latency and
batch histograms are the server's as a whole (no model, no project).
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_PROJECT = re.compile(r'project="((?:[^"\\]|\\.)*)"')
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["project", "endpoint", "model", "status"]
        self.requests = Counter("tunelab_requests", "Requests answered.", labels, registry=self.registry)
        self.errors = Counter("tunelab_errors", "Requests answered with an error status (>= 400).", labels,
                              registry=self.registry)
        self.latency = Histogram("tunelab_request_latency_seconds", "Time from request to the end of the answer.",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("tunelab_prompt_tokens", "Prompt (input) tokens processed.", ["project", "model"],
                                     registry=self.registry)
        self.completion_tokens = Counter("tunelab_completion_tokens", "Tokens generated.", ["project", "model"],
                                         registry=self.registry)
        self.batch_rows = Histogram("tunelab_batch_rows", "Rows generated together in one batch.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)

    def observe(self, endpoint: str, model: str | None, status: int, seconds: float, prompt_tokens: int | None,
                completion_tokens: int | None, project: str | None = None) -> None:
        labels = (project or "", endpoint, model or "", str(status))
        self.requests.labels(*labels).inc()
        if status >= 400:
            self.errors.labels(*labels).inc()
        self.latency.labels(endpoint).observe(seconds)
        if prompt_tokens:
            self.prompt_tokens.labels(project or "", model or "").inc(prompt_tokens)
        if completion_tokens:
            self.completion_tokens.labels(project or "", model or "").inc(completion_tokens)

    def render(self, project: str) -> bytes:
        """The exposition text with the series of `project`, of no project and of no model label."""
        lines = generate_latest(self.registry).decode().splitlines(keepends=True)
        kept = [line for line in lines if (found := _PROJECT.search(line)) is None or found[1] in ("", project)]
        return "".join(kept).encode()
