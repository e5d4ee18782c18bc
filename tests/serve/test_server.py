"""The real server in a subprocess, called as applications call it: the `openai` client (sync, async, streaming) and
httpx for the error cases. One server for the whole file: two LoRA adapters of the tiny Llama (trained to answer
differently) on one base, the tiny encoder for embeddings and a tiny LoRA classifier."""

from __future__ import annotations

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from serving import free_port, server_home, start_server
from toydata import INTENT_WORDS, intent_rows
from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.govern.keys import create_key, revoke_key
from tunelab.store import Store, open_store
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train
from tunelab.workspace import Workspace

HELLO = [{"role": "user", "content": "Greet customer number 7 order"}]


@dataclass
class Server:
    url: str
    store: Store
    greeter: str  # adapter trained to say hello
    leaver: str  # adapter trained to say goodbye
    base: str  # the tiny Llama both run on
    encoder: str
    classifier: str
    key: str  # every model, not admin
    admin: str
    limited: str  # only `greeter`
    slow: str  # 2 requests per minute
    log: Path

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, timeout=60)

    def post(self, path: str, body: dict | None = None, key: str | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}", **kwargs.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {key or self.key}"}, timeout=60)


def _dataset(store: Store, folder: Path, name: str, answer: str) -> str:
    rng = random.Random(name)
    rows = [{"instruction": f"Greet customer number {i} {rng.choice(INTENT_WORDS)}", "input": "", "output": answer}
            for i in range(60)]
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    quick = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False},
                                       "leakage": {"near": False}})
    return prepare(store, import_data(store, [str(path)], name=name).version.id, quick).id


def _intents(store: Store, folder: Path) -> str:
    path = folder / "intents.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in intent_rows(60)))
    quick = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False},
                                       "leakage": {"near": False}})
    return prepare(store, import_data(store, [str(path)], name="intents").version.id, quick).id


def _train(store: Store, **values) -> str:
    result = train(store, TrainConfig.model_validate({"seed": 0, "threads": 1, **values}))
    assert result["state"] == "succeeded"
    return result["model"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_causal_lm, tiny_encoder):
    folder = tmp_path_factory.mktemp("serve")
    home, env = server_home(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNELAB_HOME", str(home))
        store = open_store(Workspace(home, f"sqlite:///{home / 'tunelab.db'}"))
        sft = {"base_model": str(tiny_causal_lm), "learning_rate": 1e-2, "max_steps": 12, "max_tokens": 128,
               "lora": {"r": 8, "alpha": 16}}
        greeter = _train(store, dataset=_dataset(store, folder, "hello", "Hello and thank you for contacting "
                                                 "support."), name="greeter", **sft)
        leaver = _train(store, dataset=_dataset(store, folder, "bye", "Goodbye, have a nice day!"), name="leaver",
                        **sft)
        classifier = _train(store, dataset=_intents(store, folder), base_model=str(tiny_encoder), max_steps=6,
                            name="intent-classifier")
        keys = {name: create_key(store, name, **options)[1] for name, options in {
            "key": {}, "admin": {"admin": True}, "limited": {"models": [greeter]}, "slow": {"rate_limit": 2}}.items()}
    port, log = free_port(), folder / "server.log"
    process = start_server(env, [greeter, leaver, str(tiny_encoder), classifier], port, log)
    try:
        yield Server(f"http://127.0.0.1:{port}", store, greeter, leaver, str(tiny_causal_lm), str(tiny_encoder),
                     classifier, log=log, **keys)
    finally:
        process.terminate()
        process.wait(timeout=30)
        store.close()


def _greedy(server: Server, model: str, max_tokens: int = 12) -> str:
    reply = server.client().chat.completions.create(model=model, messages=HELLO, max_tokens=max_tokens,
                                                    temperature=0)
    return reply.choices[0].message.content


# ---------------------------------------------------------------------------------------------------- the happy path


def test_models_lists_bases_and_adapters_with_their_parent(server):
    cards = {m.id: m for m in server.client().models.list().data}
    assert {server.greeter, server.leaver, server.base, server.encoder, server.classifier} <= set(cards)
    assert cards[server.greeter].parent == server.base and cards[server.leaver].parent == server.base
    assert cards[server.greeter].owned_by == "tunelab" and cards[server.base].parent is None
    tasks = {i: cards[i].task for i in (server.greeter, server.base, server.encoder, server.classifier)}
    assert tasks == {server.greeter: "generation", server.base: "generation", server.encoder: "embedding",
                     server.classifier: "classification"}


def test_chat_completion_with_usage(server):
    reply = server.client().chat.completions.create(model=server.greeter, messages=HELLO, max_tokens=6,
                                                    temperature=0)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == server.greeter
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 1 <= reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_adapters_answer_differently_and_as_offline_generation(server):
    from tunelab.evaluate.predict import generate
    from tunelab.train.data import render_chats
    from tunelab.train.service import load_model

    hello, bye, base = (_greedy(server, m) for m in (server.greeter, server.leaver, server.base))
    assert len({hello, bye, base}) == 3, (hello, bye, base)
    model, tokenizer = load_model(server.store.get_model(server.greeter))
    text = render_chats(tokenizer, [HELLO], generation=True)[0]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert generate(model, tokenizer, [ids], max_new_tokens=12) == [hello.strip()]


def test_streaming_chunks_arrive_in_order_and_end_with_done(server):
    body = {"model": server.greeter, "messages": HELLO, "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {server.key}"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 8
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == _greedy(server, server.greeter, max_tokens=8)


def test_openai_client_streams_chat_and_completions(server):
    stream = server.client().chat.completions.create(model=server.leaver, messages=HELLO, max_tokens=8,
                                                     temperature=0, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == _greedy(server, server.leaver, max_tokens=8)
    stream = server.client().completions.create(model=server.base, prompt="Hello my order", max_tokens=5,
                                                temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length") and chunks[0].object == "text_completion"


def test_completions_take_a_list_of_prompts_with_n_choices_each(server):
    reply = server.client().completions.create(model=server.greeter, prompt=["Hello", "Refund my order please"],
                                               n=2, max_tokens=5, temperature=0.9, seed=3)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    again = server.client().completions.create(model=server.greeter, prompt=["Hello", "Refund my order please"],
                                               n=2, max_tokens=5, temperature=0.9, seed=3)
    assert [c.text for c in again.choices] == [c.text for c in reply.choices]  # same seed, same sample
    assert 4 <= reply.usage.completion_tokens <= 20


def test_async_client_and_embeddings(server):
    async def calls():
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        chat, vectors = await asyncio.gather(
            client.chat.completions.create(model=server.greeter, messages=HELLO, max_tokens=4, temperature=0),
            client.embeddings.create(model=server.encoder, input=["refund my order", "track my package"]))
        await client.close()
        return chat, vectors

    chat, vectors = asyncio.run(calls())
    assert chat.choices[0].message.content is not None
    assert [len(v.embedding) for v in vectors.data] == [32, 32]  # the client asks for base64 and decodes it
    assert abs(sum(x * x for x in vectors.data[0].embedding) - 1) < 1e-4
    floats = server.post("/v1/embeddings", {"model": server.encoder, "input": "refund my order"}).json()
    assert floats["data"][0]["embedding"] == pytest.approx(vectors.data[0].embedding, abs=1e-6)
    assert floats["usage"]["prompt_tokens"] > 0


def test_classifications_give_every_label_a_score(server):
    reply = server.post("/v1/classifications", {"model": server.classifier, "input": ["refund please", "track"]})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert {s["label"] for s in data[0]["labels"]} == {"refund", "track"}
    assert sum(s["score"] for s in data[0]["labels"]) == pytest.approx(1, abs=1e-5)
    assert data[0]["label"] == data[0]["labels"][0]["label"]


# ---------------------------------------------------------------------------------------------------- errors


def test_an_unknown_model_stops_the_server_before_it_starts(cli):
    done = cli("serve", "--model", "no-such-model", "--port", "0")
    assert done.returncode == 2 and "no model 'no-such-model'" in done.stderr and "Traceback" not in done.stderr


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "Traceback" not in error["message"]
    return error


def test_keys_missing_wrong_or_revoked_are_401(server):
    body = {"model": server.greeter, "messages": HELLO, "max_tokens": 2}
    assert "missing API key" in _error(httpx.post(f"{server.url}/v1/chat/completions", json=body), 401)["message"]
    _error(server.post("/v1/chat/completions", body, key=server.key[:-3] + "abc"), 401)
    key, plaintext = create_key(server.store, "short-lived")
    assert server.post("/v1/chat/completions", body, key=plaintext).status_code == 200
    revoke_key(server.store, key.id)
    assert "revoked" in _error(server.post("/v1/chat/completions", body, key=plaintext), 401)["message"]
    with pytest.raises(openai.AuthenticationError):
        server.client("tl-0000000000.nope").models.list()


def test_unknown_model_is_404_listing_the_models(server):
    error = _error(server.post("/v1/chat/completions", {"model": "gpt-9", "messages": HELLO}), 404)
    assert "`gpt-9` does not exist" in error["message"] and server.greeter in error["message"]
    with pytest.raises(openai.NotFoundError):
        server.client().chat.completions.create(model="gpt-9", messages=HELLO)


def test_a_key_limited_to_one_model_sees_only_that_one(server):
    error = _error(server.post("/v1/chat/completions", {"model": server.leaver, "messages": HELLO}, key=server.limited),
                   404)
    assert server.greeter in error["message"] and server.leaver not in error["message"].split("Models:")[1]
    assert [m["id"] for m in server.get("/v1/models", key=server.limited).json()["data"]] == [server.greeter]
    assert server.post("/v1/chat/completions", {"model": server.greeter, "messages": HELLO, "max_tokens": 2},
                       key=server.limited).status_code == 200


@pytest.mark.parametrize(("field", "value"), [("max_tokens", -1), ("max_tokens", 0), ("n", 0), ("n", 99),
                                              ("temperature", -0.5), ("stop", ["a", "b", "c", "d", "e"])])
def test_invalid_fields_are_422_naming_the_field(server, field, value):
    body = {"model": server.greeter, "messages": HELLO, field: value}
    assert _error(server.post("/v1/chat/completions", body), 422)["param"] == field


def test_malformed_json_oversize_body_and_over_cap_requests(server):
    headers = {"Content-Type": "application/json"}
    assert _error(server.post("/v1/chat/completions", content=b'{"model": ', headers=headers), 400)["code"] \
        == "invalid_json"
    huge = {"model": server.greeter, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    assert _error(server.post("/v1/chat/completions", huge), 413)["code"] == "request_too_large"
    over = {"model": server.greeter, "messages": HELLO, "max_tokens": 10_000}
    assert _error(server.post("/v1/chat/completions", over), 400)["param"] == "max_tokens"
    wrong_task = {"model": server.encoder, "messages": HELLO}
    assert _error(server.post("/v1/chat/completions", wrong_task), 400)["param"] == "model"


def test_rate_limit_is_429_with_retry_after(server):
    body = {"model": server.encoder, "input": "hi"}
    statuses = [server.post("/v1/embeddings", body, key=server.slow) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert int(statuses[-1].headers["Retry-After"]) >= 1
    assert _error(statuses[-1], 429)["type"] == "rate_limit_error"


def test_admin_routes_load_and_unload_at_runtime(server):
    assert _error(server.post("/v1/admin/models", {"model": server.leaver}), 403)["type"] == "permission_error"
    unloaded = httpx.delete(f"{server.url}/v1/admin/models/{server.leaver}", timeout=60,
                            headers={"Authorization": f"Bearer {server.admin}"})
    assert unloaded.json() == {"id": server.leaver, "object": "model", "deleted": True}
    _error(server.post("/v1/chat/completions", {"model": server.leaver, "messages": HELLO}), 404)
    conflict = httpx.delete(f"{server.url}/v1/admin/models/{server.base}", timeout=60,
                            headers={"Authorization": f"Bearer {server.admin}"})
    assert server.greeter in _error(conflict, 409)["message"]
    loaded = server.post("/v1/admin/models", {"model": server.leaver}, key=server.admin)
    assert loaded.status_code == 200 and loaded.json()["parent"] == server.base
    assert _greedy(server, server.leaver)


# ---------------------------------------------------------------------------------------------------- under load


def test_twenty_concurrent_clients_get_no_errors_and_are_batched(server):
    models = [server.greeter, server.leaver, server.base]

    def client_session(i: int) -> int:
        client = server.client()
        for j in range(3):
            model = models[(i + j) % 3]
            if j == 1:
                text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model=model, messages=HELLO, max_tokens=10, temperature=0.7, seed=i, stream=True) if c.choices)
            else:
                text = client.chat.completions.create(model=model, messages=HELLO, max_tokens=10,
                                                      temperature=0).choices[0].message.content
            assert isinstance(text, str)
        return 3

    with ThreadPoolExecutor(20) as pool:
        assert sum(pool.map(client_session, range(20))) == 60
    metrics = server.get("/metrics").text
    single = _metric(metrics, 'tunelab_batch_rows_bucket{le="1.0"}')
    assert _metric(metrics, "tunelab_batch_rows_count") > single  # some batches held several requests


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_client_that_disconnects_mid_stream_does_not_hurt_the_server(server):
    body = {"model": server.base, "messages": HELLO, "max_tokens": 250, "temperature": 1.0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {server.key}"}) as response:
        next(response.iter_lines())  # the first chunk, then hang up
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert _greedy(server, server.greeter, max_tokens=3)
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = server.store.request_log(limit=50, model=server.base)
        if any("went away" in (r["error"] or "") for r in rows):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the disconnect was not noticed")


def test_health_needs_no_key_metrics_does_and_counts_requests(server):
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    _greedy(server, server.greeter, max_tokens=2)
    text = server.get("/metrics").text
    series = f'endpoint="/v1/chat/completions",model="{server.greeter}",project="default",status="200"'
    assert _metric(text, f"tunelab_requests_total{{{series}}}") >= 1
    assert _metric(text, "tunelab_completion_tokens_total") > 0 and "tunelab_request_latency_seconds_bucket" in text
    server.post("/v1/embeddings", {"model": "nope", "input": "hi"})
    text = server.get("/metrics").text
    assert _metric(text, 'tunelab_errors_total{endpoint="/v1/embeddings",model="",project="default"') > 0
    rows = server.store.request_log(limit=200, model=server.greeter)
    assert any(r["status"] == 200 and r["key_id"] and r["prompt_tokens"] and r["completion_tokens"] for r in rows)
