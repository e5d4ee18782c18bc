"""Entities: the token classifier's tags read back as character spans of each input (train/tagging.py)."""

from __future__ import annotations

import uuid

from fastapi import Request

from tunelab.evaluate.predict import tag
from tunelab.serve.auth import Caller
from tunelab.serve.encoders import run_request
from tunelab.serve.entities.protocol import Entities, Entity, EntityRequest, EntityResponse
from tunelab.serve.protocol import usage


async def create_entities(request: Request, body: EntityRequest, caller: Caller) -> EntityResponse:
    entry, found, tokens, record = await run_request(request, caller, body.model, body.input, "token_classification",
                                                     tag)
    data = [Entities(index=i, entities=[Entity(**e) for e in spans if e["score"] >= body.min_score])
            for i, spans in enumerate(found)]
    record.response_text = "\n".join(" ".join(f"{e.label}:{e.text}" for e in item.entities) for item in data)
    return EntityResponse(id=f"ent-{uuid.uuid4().hex}", model=entry.id, data=data, usage=usage(tokens))
