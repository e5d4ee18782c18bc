"""What every endpoint shares: the lenient request base, the error body, token usage.

Each endpoint's own request and response models live in its folder (`chat/protocol.py`, ...), with fields ordered
as in OpenAI's API reference (https://platform.openai.com/docs/api-reference) and tunelab's extras below a marker.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger("tunelab.serve")


class OpenAIRequest(BaseModel):
    """Fields tunelab does not implement are accepted (clients send them by default) and logged, not silently lost."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _log_ignored(self) -> OpenAIRequest:
        if self.model_extra:
            logger.info("%s: fields ignored: %s", type(self).__name__, ", ".join(sorted(self.model_extra)))
        return self


def _at_most_four(stop: str | list[str] | None) -> str | list[str] | None:
    if isinstance(stop, list) and len(stop) > 4:
        raise ValueError(f"at most 4 stop strings, got {len(stop)}")
    return stop


Stop = Annotated[str | list[str] | None, AfterValidator(_at_most_four)]


def _texts(value: str | list[str]) -> str | list[str]:
    if isinstance(value, list) and not 1 <= len(value) <= MAX_INPUTS:
        raise ValueError(f"give 1 to {MAX_INPUTS} texts, got {len(value)}")
    return value


MAX_INPUTS = 2048  # texts per embeddings or classifications request, as OpenAI allows
TextInput = Annotated[str | list[str], AfterValidator(_texts)]


def texts_of(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def stop_strings(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage and no choices.")

    @staticmethod
    def wants_usage(options: StreamOptions | None) -> bool:
        return options is not None and options.include_usage


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


def usage(prompt_tokens: int, completion_tokens: int = 0) -> Usage:
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                 total_tokens=prompt_tokens + completion_tokens)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: its error statuses in the OpenAPI schema, all with the one error body."""
    common = (400, 401, 404, 413, 422, 429, 500)
    return {status: {"model": ErrorResponse} for status in sorted({*common, *statuses})}


def stream_response(chunk: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry saying a route also answers with server-sent events of `chunk`."""
    events = f"`data: <{chunk.__name__} JSON>` events, one per piece, then `data: [DONE]` (with `stream: true`)"
    return {200: {"content": {"text/event-stream": {"schema": {"type": "string", "description": events}}}}}
