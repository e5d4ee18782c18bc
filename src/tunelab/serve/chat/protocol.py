"""Chat completion request and response models, fields ordered as in OpenAI's reference:
https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.decode import SamplingParams
from tunelab.serve.protocol import OpenAIRequest, Stop, StreamOptions, Usage, stop_strings


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    role: Literal["system", "developer", "user", "assistant"] = Field(
        description="developer is treated as system, as for models that predate it.")
    content: str | list[TextPart] = Field(description="Text, or a list of text parts (joined).")

    def as_template_input(self) -> dict[str, str]:
        """The {role, content} dict the chat template renders, as in training data."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatCompletionRequest(OpenAIRequest):
    messages: list[ChatMessageIn] = Field(min_length=1)
    model: str
    max_completion_tokens: int | None = Field(None, ge=1, description="Most tokens to generate per choice.")
    max_tokens: int | None = Field(None, ge=1, description="Older name of max_completion_tokens.")
    n: int = Field(1, ge=1, le=16, description="Choices to generate for the conversation.")
    seed: int | None = Field(None, description="Same seed and request: same sampled answer.")
    stop: Stop = Field(None, description="Up to 4 strings that end the answer (not included).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2, description="0: greedy (deterministic).")
    top_p: float = Field(1.0, gt=0, le=1, description="Sample from the smallest set of tokens with this much mass.")
    user: str | None = None

    def sampling(self, default_max_tokens: int, extra_stop: tuple[str, ...] = ()) -> SamplingParams:
        return SamplingParams(max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
                              temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                              stop=(*stop_strings(self.stop), *extra_stop))


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
