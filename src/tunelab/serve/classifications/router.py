"""The route: parse, authenticate, hand to the handler."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tunelab.serve.auth import Caller, inference
from tunelab.serve.classifications.handler import create_classifications
from tunelab.serve.classifications.protocol import ClassificationRequest, ClassificationResponse
from tunelab.serve.protocol import error_responses

router = APIRouter(tags=["classifications"])


@router.post("/v1/classifications", response_model=ClassificationResponse, responses=error_responses())
async def classifications(request: Request, body: ClassificationRequest,
                          caller: Caller = Depends(inference)) -> ClassificationResponse:
    """Label texts with a classifier model (tunelab extension): the top label and every label's probability."""
    return await create_classifications(request, body, caller)
