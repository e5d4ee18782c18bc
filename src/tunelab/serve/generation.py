"""What chat and text completions share: the request checked against the limits, a job for the engine, and its
output gathered into one answer or streamed as server-sent events.

max_tokens above the server's cap is refused (400) rather than clamped, so a client never gets a shorter answer
than it asked for without knowing; a chat request that gives none gets the cap (a completion request: 16, as at
OpenAI). A prompt leaves room for at most `context length - prompt tokens` new tokens; the answer then ends with
finish_reason "length".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from tunelab.serve.decode import SamplingParams
from tunelab.serve.engine import Delta, Done, Job
from tunelab.serve.errors import ApiError, stream_error
from tunelab.serve.middleware import record_of
from tunelab.serve.protocol import Usage, usage
from tunelab.serve.registry import Served
from tunelab.serve.state import get_server

CLIENT_GONE = 499  # nginx's status for a client that closed the connection before the answer: only in logs


@dataclass
class Outcome:
    """Per row: the text, why it ended and how many tokens it took, gathered from the job's events."""

    texts: list[str]
    reasons: list[str | None]
    tokens: list[int]

    @classmethod
    def of(cls, job: Job) -> Outcome:
        rows = len(job.prompts)
        return cls([""] * rows, [None] * rows, [0] * rows)

    def add(self, event: Delta | Done) -> None:
        if isinstance(event, Delta):
            self.texts[event.index] += event.text
        else:
            self.reasons[event.index], self.tokens[event.index] = event.reason, event.tokens

    @property
    def complete(self) -> bool:
        return all(self.reasons)


def start_job(request: Request, entry: Served, prompts: list[list[int]], n: int, params: SamplingParams,
              prompt_field: str) -> Job:
    """Check the request against the cap and the context, and queue len(prompts) * n rows (503 when full)."""
    cap = get_server(request).settings.max_tokens_cap
    if params.max_tokens > cap:
        raise ApiError(400, f"max_tokens is {params.max_tokens}, over this server's cap of {cap}",
                       param="max_tokens", code="max_tokens_too_large")
    context = entry.context_length
    limits = []
    for prompt in prompts:
        room = context - len(prompt) if context else params.max_tokens
        if room < 1:
            raise ApiError(400, f"the prompt has {len(prompt)} tokens but {entry.id} reads at most {context}",
                           param=prompt_field, code="context_length_exceeded")
        limits += [min(params.max_tokens, room)] * n
    job = Job([p for p in prompts for _ in range(n)], limits, params, adapter=entry.adapter,
              tokenizer=entry.tokenizer, stop_ids=entry.stop_ids)
    record_of(request).prompt_tokens = sum(len(p) for p in prompts)
    entry.engine.submit(job)
    return job


async def follow(request: Request, job: Job, outcome: Outcome) -> AsyncIterator[Delta | Done]:
    """The job's events, noted in `outcome` and the request record; a reader that stops early cancels the job."""
    record = record_of(request)
    try:
        async for event in job.events(request.is_disconnected):
            outcome.add(event)
            yield event
    finally:
        if not outcome.complete:
            job.cancelled = True
            record.error = record.error or "the client went away before the answer was complete"
        record.completion_tokens = sum(outcome.tokens)
        record.response_text = "\n".join(outcome.texts)


async def collect(request: Request, job: Job) -> Outcome | Response:
    """Every row to its end; a 499 (for the log only) when the client went away meanwhile."""
    outcome = Outcome.of(job)
    async for _ in follow(request, job, outcome):
        pass
    if not outcome.complete:
        return Response(status_code=CLIENT_GONE)
    return outcome


async def stream_choices(request: Request, job: Job, piece: Callable[[int, str | None, str | None], BaseModel],
                         usage_chunk: Callable[[Usage], BaseModel] | None) -> AsyncIterator[BaseModel]:
    """The job as chunks: `piece(index, text, None)` for text, `piece(index, None, finish_reason)` for a row's end,
    then `usage_chunk(usage)` when the client asked for one."""
    outcome = Outcome.of(job)
    async for event in follow(request, job, outcome):
        yield piece(event.index, event.text, None) if isinstance(event, Delta) else piece(event.index, None,
                                                                                          event.reason)
    if usage_chunk is not None and outcome.complete:
        yield usage_chunk(usage(record_of(request).prompt_tokens or 0, sum(outcome.tokens)))


def sse(payload: BaseModel | dict[str, Any]) -> str:
    data = payload.model_dump_json() if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {data}\n\n"


async def event_stream(chunks: AsyncIterator[BaseModel]) -> AsyncIterator[str]:
    """Chunks as server-sent events ending with `data: [DONE]`; a failure midway is sent as an error event."""
    try:
        async for chunk in chunks:
            yield sse(chunk)
    except Exception as exc:
        yield sse(stream_error(exc))
        return
    yield "data: [DONE]\n\n"
