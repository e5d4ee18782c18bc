"""Embedding request and response models, fields ordered as in OpenAI's reference:
https://platform.openai.com/docs/api-reference/embeddings/create
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.protocol import OpenAIRequest, TextInput, Usage


class EmbeddingRequest(OpenAIRequest):
    input: TextInput = Field(description="A text or a list of up to 2048 texts.")
    model: str
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes (the openai client's "
                             "default).")
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str
    index: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage
