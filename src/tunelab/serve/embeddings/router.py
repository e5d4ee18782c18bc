"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.serve.auth import Caller, inference
from tunelab.serve.embeddings.handler import create_embeddings
from tunelab.serve.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=error_responses())
async def embeddings(request: Request, body: EmbeddingRequest,
                     caller: Caller = Depends(inference)) -> EmbeddingResponse:
    """Embed texts with an encoder model (e.g. minilm-l6): unit-length vectors, comparable by dot product."""
    return await create_embeddings(request, body, caller)
