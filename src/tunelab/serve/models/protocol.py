"""Model list and admin request/response models (https://platform.openai.com/docs/api-reference/models), with
tunelab's `parent` (the base an adapter runs on, as vLLM lists LoRA adapters), `root`, `task` and `kind`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tunelab.serve.protocol import OpenAIRequest


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tunelab"
    # tunelab extras
    root: str = Field(description="The folder the weights were loaded from.")
    parent: str | None = Field(None, description="For a LoRA adapter: the base model it runs on.")
    task: Literal["generation", "embedding", "classification", "token_classification"]
    kind: Literal["base", "adapter", "full"]
    labels: list[str] | None = Field(None, description="For a classifier: its labels; for a token classifier: its "
                                     "entity types.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LoadModelRequest(OpenAIRequest):
    model: str = Field(description="A registered model id or name, a base model short name, or a model folder.")


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True
