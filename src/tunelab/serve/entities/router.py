"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.govern.keys import ApiKey
from tunelab.serve.auth import api_key
from tunelab.serve.entities.handler import create_entities
from tunelab.serve.entities.protocol import EntityRequest, EntityResponse
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["entities"])


@router.post("/v1/entities", response_model=EntityResponse, responses=error_responses())
async def entities(request: Request, body: EntityRequest, key: ApiKey = Depends(api_key)) -> EntityResponse:
    """Find entities in texts with a token-classification model (tunelab extension): spans, types and scores."""
    return await create_entities(request, body, key)
