"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from tunelab.serve.auth import Caller, inference
from tunelab.serve.chat.handler import create_chat_completion
from tunelab.serve.chat.protocol import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse
from tunelab.serve.protocol import error_responses, stream_response

router = APIRouter(tags=["chat"])


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse,
             responses={**error_responses(503), **stream_response(ChatCompletionChunk)})
async def chat_completions(request: Request, body: ChatCompletionRequest,
                           caller: Caller = Depends(inference)) -> ChatCompletionResponse | Response:
    """Answer a conversation with the model's chat template; `stream: true` sends chat.completion.chunk events."""
    return await create_chat_completion(request, body, caller)
