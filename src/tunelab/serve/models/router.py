"""GET /v1/models for every key; POST and DELETE /v1/admin/models for admin keys (403 otherwise)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.govern.keys import ApiKey
from tunelab.serve.auth import admin_key, api_key
from tunelab.serve.models.handler import list_models, load_model, unload_model
from tunelab.serve.models.protocol import LoadModelRequest, ModelCard, ModelDeleted, ModelList
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList, responses=error_responses())
async def models(request: Request, key: ApiKey = Depends(api_key)) -> ModelList:
    """The models this key may call: bases, adapters (with `parent`), full fine-tunes, encoders, classifiers."""
    return list_models(request, key)


@router.post("/v1/admin/models", response_model=ModelCard, responses=error_responses(403))
async def admin_load(request: Request, body: LoadModelRequest, _key: ApiKey = Depends(admin_key)) -> ModelCard:
    """Load a model without a restart (an adapter joins its base already in memory)."""
    return await load_model(request, body)


@router.delete("/v1/admin/models/{ref:path}", response_model=ModelDeleted, responses=error_responses(403, 409))
async def admin_unload(request: Request, ref: str, _key: ApiKey = Depends(admin_key)) -> ModelDeleted:
    """Unload a model; requests still waiting for it get a 404. A base with adapters on it is refused (409)."""
    return await unload_model(request, ref)
