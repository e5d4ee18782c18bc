"""Entity request and response models: a tunelab extension in the shape of OpenAI's embeddings endpoint (`input`
text or texts in, one `data` item per text out), beside /v1/classifications."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.protocol import OpenAIRequest, TextInput, Usage


class EntityRequest(OpenAIRequest):
    model: str
    input: TextInput = Field(description="A text or a list of up to 2048 texts.")
    # tunelab extras
    min_score: float = Field(0.0, ge=0, le=1, description="Leave out entities scored below this.")


class Entity(BaseModel):
    start: int = Field(description="Offset of the first character in the input text (0-based, in Unicode code "
                                   "points, as Python and JSON strings count).")
    end: int = Field(description="Offset one past the last character (end exclusive).")
    label: str = Field(description="The entity type.")
    text: str = Field(description="input[start:end].")
    score: float = Field(description="Mean probability of the predicted tags of the entity's words.")


class Entities(BaseModel):
    object: Literal["entities"] = "entities"
    index: int
    entities: list[Entity] = Field(description="In text order; they never overlap.")


class EntityResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[Entities]
    usage: Usage
