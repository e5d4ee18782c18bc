"""Embeddings, classifications and entities: one forward pass over the texts, on a worker thread, one request at a
time per model. Inputs longer than MAX_INPUT_TOKENS are cut, as sentence-transformers cuts MiniLM's (entities past
the cut are not found)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tunelab.serve.auth import Caller, model_for
from tunelab.serve.middleware import RequestRecord, record_of
from tunelab.serve.protocol import texts_of
from tunelab.serve.registry import Served

MAX_INPUT_TOKENS = 256


async def run_encoder(entry: Served, texts: list[str],
                      predict: Callable[..., np.ndarray]) -> tuple[np.ndarray, int]:
    """`predict(model, tokenizer, texts, max_length=...)` (evaluate.predict.embed, classify or tag) and the input
    tokens."""

    def run() -> tuple[np.ndarray, int]:
        with entry.lock:
            ids = entry.tokenizer(texts, truncation=True, max_length=MAX_INPUT_TOKENS, verbose=False)["input_ids"]
            return predict(entry.model, entry.tokenizer, texts, max_length=MAX_INPUT_TOKENS), sum(map(len, ids))

    return await run_in_threadpool(run)


async def run_request(request: Request, caller: Caller, model: str, inputs: str | list[str], task: str,
                      predict: Callable[..., Any]) -> tuple[Served, Any, int, RequestRecord]:
    """What every encoder endpoint does first: the model the key may use for `task`, `predict` over the input
    texts, and the input tokens, with the texts and tokens noted in the request's record."""
    entry = model_for(request, caller, model, task)
    texts = texts_of(inputs)
    record = record_of(request)
    record.request_text = "\n".join(texts)
    outputs, tokens = await run_encoder(entry, texts, predict)
    record.prompt_tokens = tokens
    return entry, outputs, tokens, record
