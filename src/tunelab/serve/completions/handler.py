"""Text completions: each prompt tokenized as plain text (a BOS first where the tokenizer adds one, as completion
data is trained and evaluated), n choices per prompt; choice i * n + j is prompt i's j-th."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from tunelab.serve.auth import Caller, model_for
from tunelab.serve.completions.protocol import CompletionChoice, CompletionRequest, CompletionResponse
from tunelab.serve.engine import Job
from tunelab.serve.generation import collect, event_stream, start_job, stream_choices
from tunelab.serve.middleware import record_of
from tunelab.serve.protocol import StreamOptions, Usage, usage
from tunelab.serve.state import get_server


async def create_completion(request: Request, body: CompletionRequest, caller: Caller) -> CompletionResponse | Response:
    entry = model_for(request, caller, body.model, "generation")
    record_of(request).request_text = "\n".join(body.prompts)
    ids = entry.tokenizer(body.prompts, verbose=False)["input_ids"]
    params = body.sampling(get_server(request).settings.max_tokens_cap)
    job = start_job(request, entry, ids, body.n, params, "prompt")
    answer_id = f"cmpl-{uuid.uuid4().hex}"
    if body.stream:
        chunks = _chunks(request, job, answer_id, entry.id, StreamOptions.wants_usage(body.stream_options))
        return StreamingResponse(event_stream(chunks), media_type="text/event-stream")
    outcome = await collect(request, job)
    if isinstance(outcome, Response):
        return outcome
    choices = [CompletionChoice(index=i, text=t, finish_reason=r)
               for i, (t, r) in enumerate(zip(outcome.texts, outcome.reasons, strict=True))]
    return CompletionResponse(id=answer_id, model=entry.id, choices=choices,
                              usage=usage(sum(len(x) for x in ids), sum(outcome.tokens)))


async def _chunks(request: Request, job: Job, answer_id: str, model: str,
                  include_usage: bool) -> AsyncIterator[CompletionResponse]:
    created = int(time.time())

    def chunk(choices: list[CompletionChoice], used: Usage | None = None) -> CompletionResponse:
        return CompletionResponse(id=answer_id, created=created, model=model, choices=choices, usage=used)

    def piece(index: int, text: str | None, finish: str | None) -> CompletionResponse:
        return chunk([CompletionChoice(index=index, text=text or "", finish_reason=finish)])

    async for item in stream_choices(request, job, piece, (lambda used: chunk([], used)) if include_usage else None):
        yield item
