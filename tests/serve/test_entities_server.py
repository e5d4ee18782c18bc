"""POST /v1/entities on the real server (uvicorn on 127.0.0.1 in a subprocess): a tiny full token classifier, a
LoRA one (merged in memory), the full one's folder served as a base, and the tiny encoder for the wrong-task case."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving import free_port, server_home, start_server
from toydata import entity_rows
from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.govern.keys import create_key
from tunelab.store import Store, open_store
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train
from tunelab.workspace import Workspace

TEXTS = ["track my package tomorrow please", "the invoice for this week", "hello"]


@dataclass
class Tagger:
    url: str
    store: Store
    full: str  # registered full fine-tune
    lora: str  # registered LoRA adapter
    folder: str  # the full model's folder, served as a base
    encoder: str
    key: str

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {self.key}"},
                          timeout=60)


def _train(store: Store, dataset: str, encoder: Path, **values) -> str:
    result = train(store, TrainConfig.model_validate({"dataset": dataset, "base_model": str(encoder), "seed": 0,
                                                      "threads": 1, **values}))
    assert result["state"] == "succeeded"
    return result["model"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("entities")
    home, env = server_home(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_HOME", str(home))
        store = open_store(Workspace(home, f"sqlite:///{home / 'tunelab.db'}"))
        rows = folder / "rows.jsonl"
        rows.write_text("".join(json.dumps(r) + "\n" for r in entity_rows(160)))
        quick = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False},
                                           "leakage": {"near": False}})
        dataset = prepare(store, import_data(store, [str(rows)]).version.id, quick).id
        full = _train(store, dataset, tiny_encoder, method="full", learning_rate=3e-3, epochs=8, name="tagger")
        lora = _train(store, dataset, tiny_encoder, max_steps=4, name="lora-tagger")
        key = create_key(store, "key")[1]
    saved = store.get_model(full)["path"]
    port, log = free_port(), folder / "server.log"
    process = start_server(env, [full, lora, saved, str(tiny_encoder)], port, log)
    try:
        yield Tagger(f"http://127.0.0.1:{port}", store, full, lora, saved, str(tiny_encoder), key)
    finally:
        process.terminate()
        process.wait(timeout=30)
        store.close()


def test_entities_come_back_per_input_as_offline_prediction_finds_them(tagger):
    from tunelab.evaluate.predict import tag
    from tunelab.train.service import load_model

    response = tagger.post("/v1/entities", {"model": tagger.full, "input": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == tagger.full and body["id"].startswith("ent-")
    assert [item["index"] for item in body["data"]] == [0, 1, 2] and body["usage"]["prompt_tokens"] > 10
    found = [item["entities"] for item in body["data"]]
    assert {(e["text"], e["label"]) for e in found[0]} == {("package", "item"), ("tomorrow", "day")}
    assert all(TEXTS[i][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
               for i, spans in enumerate(found) for e in spans)
    model, tokenizer = load_model(tagger.store.get_model(tagger.full))
    offline = tag(model, tokenizer, TEXTS, max_length=256)
    assert [[(e["start"], e["end"], e["label"]) for e in spans] for spans in found] == \
        [[(e["start"], e["end"], e["label"]) for e in spans] for spans in offline]


def test_an_adapter_and_a_model_folder_serve_entities_too(tagger):
    for model in (tagger.lora, tagger.folder):
        response = tagger.post("/v1/entities", {"model": model, "input": "the card today", "min_score": 0.0})
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["object"] == "entities"
    strict = tagger.post("/v1/entities", {"model": tagger.full, "input": TEXTS[0], "min_score": 1.0})
    assert strict.json()["data"][0]["entities"] == []


def test_models_list_token_classifiers_with_their_entity_types(tagger):
    response = httpx.get(f"{tagger.url}/v1/models", headers={"Authorization": f"Bearer {tagger.key}"}, timeout=60)
    cards = {card["id"]: card for card in response.json()["data"]}
    for model in (tagger.full, tagger.lora, tagger.folder):
        assert cards[model]["task"] == "token_classification" and cards[model]["labels"] == ["day", "item"]


@pytest.mark.parametrize(("path", "model", "status", "code"), [
    ("/v1/entities", "encoder", 400, "wrong_model_task"),
    ("/v1/classifications", "full", 400, "wrong_model_task"),
    ("/v1/entities", "nope", 404, "model_not_found"),
])
def test_errors_have_openais_shape(tagger, path, model, status, code):
    name = getattr(tagger, model, model)
    response = tagger.post(path, {"model": name, "input": "hello"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == "model" and error["message"]


def test_bad_fields_are_422_naming_them(tagger):
    response = tagger.post("/v1/entities", {"model": tagger.full, "input": [], "min_score": 2})
    assert response.status_code == 422
    assert {"input", "min_score"} <= {part.split(":")[0] for part in response.json()["error"]["message"].split("; ")}
