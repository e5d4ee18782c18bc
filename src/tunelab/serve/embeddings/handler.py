"""Embeddings: mean pooling over the encoder's last hidden states, L2-normalised (as evaluation embeds)."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import Request

from tunelab.evaluate.predict import embed
from tunelab.serve.auth import Caller
from tunelab.serve.embeddings.protocol import Embedding, EmbeddingRequest, EmbeddingResponse
from tunelab.serve.encoders import run_request
from tunelab.serve.protocol import usage


def _encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


async def create_embeddings(request: Request, body: EmbeddingRequest, caller: Caller) -> EmbeddingResponse:
    entry, vectors, tokens, _ = await run_request(request, caller, body.model, body.input, "embedding", embed)
    data = [Embedding(embedding=_encoded(v, body.encoding_format), index=i) for i, v in enumerate(vectors)]
    return EmbeddingResponse(data=data, model=entry.id, usage=usage(tokens))
