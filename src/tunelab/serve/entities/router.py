"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.serve.auth import Caller, inference
from tunelab.serve.entities.handler import create_entities
from tunelab.serve.entities.protocol import EntityRequest, EntityResponse
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["entities"])


@router.post("/v1/entities", response_model=EntityResponse, responses=error_responses())
async def entities(request: Request, body: EntityRequest, caller: Caller = Depends(inference)) -> EntityResponse:
    """Find entities in texts with a token-classification model (tunelab extension): spans, types and scores."""
    return await create_entities(request, body, caller)
