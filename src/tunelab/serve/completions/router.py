"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tunelab.serve.auth import Caller, inference
from tunelab.serve.completions.handler import create_completion
from tunelab.serve.completions.protocol import CompletionRequest, CompletionResponse
from tunelab.serve.protocol import error_responses, stream_response

router = APIRouter(tags=["completions"])


@router.post("/v1/completions", response_model=CompletionResponse,
             responses={**error_responses(503), **stream_response(CompletionResponse)})
async def completions(request: Request, body: CompletionRequest,
                      caller: Caller = Depends(inference)) -> CompletionResponse | Response:
    """Continue plain-text prompts (no chat template); `stream: true` sends text_completion events."""
    return await create_completion(request, body, caller)
