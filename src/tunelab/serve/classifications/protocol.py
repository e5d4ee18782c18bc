"""Classification request and response models: a tunelab extension in the shape of OpenAI's embeddings endpoint
(`input` text or texts in, one `data` item per text out)."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.protocol import OpenAIRequest, TextInput, Usage


class ClassificationRequest(OpenAIRequest):
    model: str
    input: TextInput = Field(description="A text or a list of up to 2048 texts.")


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability of the label (softmax over the model's labels).")


class Classification(BaseModel):
    object: Literal["classification"] = "classification"
    index: int
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    labels: list[LabelScore] = Field(description="Every label with its probability, most probable first.")


class ClassificationResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    data: list[Classification]
    usage: Usage
