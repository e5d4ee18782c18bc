"""GET /v1/models for every caller; POST and DELETE /v1/admin/models for `manage` keys of engineers (403
otherwise)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.serve.auth import Caller, inference, manager
from tunelab.serve.models.handler import list_models, load_model, unload_model
from tunelab.serve.models.protocol import LoadModelRequest, ModelCard, ModelDeleted, ModelList
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList, responses=error_responses())
async def models(request: Request, caller: Caller = Depends(inference)) -> ModelList:
    """The models this key may call: bases, adapters (with `parent`), full fine-tunes, encoders, classifiers."""
    return list_models(request, caller)


@router.post("/v1/admin/models", response_model=ModelCard, responses=error_responses(403))
async def admin_load(request: Request, body: LoadModelRequest, caller: Caller = Depends(manager)) -> ModelCard:
    """Load a model without a restart (an adapter joins its base already in memory)."""
    return await load_model(request, body, caller)


@router.delete("/v1/admin/models/{ref:path}", response_model=ModelDeleted, responses=error_responses(403, 409))
async def admin_unload(request: Request, ref: str, caller: Caller = Depends(manager)) -> ModelDeleted:
    """Unload a model; requests still waiting for it get a 404. A base with adapters on it is refused (409)."""
    return await unload_model(request, ref, caller)
