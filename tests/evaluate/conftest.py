"""A tiny classifier trained on a toy intent task whose 'south' rows contradict the rest (for the bias checks)."""

from __future__ import annotations

import pytest

from toydata import intent_rows
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train


def _train_config(**values) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 0, "threads": 1, **values})


@pytest.fixture
def regional_intents(prepared) -> str:
    """The toy intent task; the 'south' fifth of the rows has its labels swapped, so a model fails that group."""
    rows = intent_rows(240, words=(6, 6))
    for i, row in enumerate(rows):
        row["region"] = "south" if i % 5 == 0 else "north"
        if row["region"] == "south":
            row["label"] = "track" if row["label"] == "refund" else "refund"
    return prepared(rows, "regional").id


@pytest.fixture
def classifier(store, regional_intents, tiny_encoder) -> str:
    result = train(store, _train_config(dataset=regional_intents, base_model=str(tiny_encoder), learning_rate=3e-3,
                               epochs=6, batch_size=8, lora={"r": 8, "alpha": 16}))
    assert result["state"] == "succeeded"
    return result["model"]


