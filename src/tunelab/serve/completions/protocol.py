"""Text completion request and response models, fields ordered as in OpenAI's reference:
https://platform.openai.com/docs/api-reference/completions/create
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.decode import SamplingParams
from tunelab.serve.protocol import OpenAIRequest, Stop, StreamOptions, Usage, stop_strings

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


class CompletionRequest(OpenAIRequest):
    model: str
    prompt: str | list[str] = Field(description="A prompt, or a list of prompts (n choices each).")
    max_tokens: int | None = Field(DEFAULT_MAX_TOKENS, ge=1, description="Most tokens to generate per choice "
                                   "(default 16, as OpenAI; null: the server's cap).")
    n: int = Field(1, ge=1, le=16, description="Choices to generate per prompt.")
    seed: int | None = Field(None, description="Same seed and request: same sampled answer.")
    stop: Stop = Field(None, description="Up to 4 strings that end the answer (not included).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2, description="0: greedy (deterministic).")
    top_p: float = Field(1.0, gt=0, le=1, description="Sample from the smallest set of tokens with this much mass.")
    user: str | None = None

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else self.prompt

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens=self.max_tokens or default_max_tokens, temperature=self.temperature,
                              top_p=self.top_p, seed=self.seed, stop=tuple(stop_strings(self.stop)))


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class CompletionResponse(BaseModel):
    """Also each streamed chunk (OpenAI sends the same object type), with a piece of text per chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
