"""Classifications: softmax over the classifier's labels, every label scored."""

from __future__ import annotations

import uuid

import numpy as np
from fastapi import Request

from tunelab.evaluate.predict import classify
from tunelab.serve.auth import Caller
from tunelab.serve.classifications.protocol import (
    Classification,
    ClassificationRequest,
    ClassificationResponse,
    LabelScore,
)
from tunelab.serve.encoders import run_request
from tunelab.serve.protocol import usage


def _classification(index: int, probabilities: np.ndarray, labels: list[str]) -> Classification:
    order = np.argsort(-probabilities, kind="stable")
    scored = [LabelScore(label=labels[i], score=float(probabilities[i])) for i in order]
    return Classification(index=index, label=scored[0].label, score=scored[0].score, labels=scored)


async def create_classifications(request: Request, body: ClassificationRequest,
                                 caller: Caller) -> ClassificationResponse:
    entry, probabilities, tokens, record = await run_request(request, caller, body.model, body.input, "classification",
                                                             classify)
    data = [_classification(i, p, entry.labels or []) for i, p in enumerate(probabilities)]
    record.response_text = "\n".join(item.label for item in data)
    return ClassificationResponse(id=f"clf-{uuid.uuid4().hex}", model=entry.id, data=data, usage=usage(tokens))
