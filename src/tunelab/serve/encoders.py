"""Embeddings, classifications and entities: one forward pass over the texts, on a worker thread, one request at a
time per model. Inputs longer than MAX_INPUT_TOKENS are cut, as sentence-transformers cuts MiniLM's (entities past
the cut are not found)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from starlette.concurrency import run_in_threadpool

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
