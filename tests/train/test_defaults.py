"""Data-dependent defaults: the values a four-line classification config trains with, and where they are recorded."""

from __future__ import annotations

import pytest

from toydata import intent_rows
from tunelab.train.config import TrainConfig, resolve
from tunelab.train.defaults import DataFacts, fit_to_data
from tunelab.train.recipe import train


def _fit(facts: DataFacts, method: str = "full", **given) -> tuple[TrainConfig, dict]:
    cfg = resolve(TrainConfig(dataset="d", base_model="m", task="classification", method=method, **given),
                  "classification")
    return fit_to_data(cfg, facts)


def test_more_labels_train_longer_and_more_rows_take_bigger_batches():
    intents = DataFacts(examples=8857, labels=64, hidden_size=384)
    spam = DataFacts(examples=4056, labels=2, hidden_size=384)
    tiny = DataFacts(examples=200, labels=5, hidden_size=384)

    (a, _), (b, _), (c, _) = _fit(intents), _fit(spam), _fit(tiny)
    assert (a.batch_size, b.batch_size, c.batch_size) == (32, 32, 8)
    assert a.epochs > b.epochs == 3  # 64 intents need more passes than 2 labels
    assert _fit(DataFacts(examples=12012, labels=7, hidden_size=384))[0].epochs == 2  # the floor: never one pass
    assert c.epochs == 15  # (300 + 15 x 5) steps at 25 steps per epoch
    assert a.warmup_ratio == 0.1 and a.head_learning_rate == 1e-3


def test_learning_rate_follows_the_method_and_the_model_size():
    def rate(method: str, hidden: int) -> float:
        return _fit(DataFacts(1000, 4, hidden), method)[0].learning_rate

    assert (rate("full", 384), rate("full", 768), rate("full", 2048), rate("lora", 384)) == (1e-4, 5e-5, 2e-5, 5e-4)


def test_what_the_user_sets_is_kept_and_not_reported_as_chosen():
    facts = DataFacts(examples=8857, labels=64, hidden_size=384)
    cfg, chosen = _fit(facts, batch_size=4, learning_rate=3e-5, epochs=1, warmup_ratio=0.0)
    assert (cfg.batch_size, cfg.learning_rate, cfg.epochs, cfg.warmup_ratio) == (4, 3e-5, 1, 0.0)
    assert set(chosen) == {"head_learning_rate"} and cfg.head_learning_rate == 1e-3
    assert "64 labels" in _fit(facts)[1]["epochs"]["why"]


def test_sft_is_left_to_resolve():
    cfg = resolve(TrainConfig(dataset="d", base_model="m", task="sft"), "chat")
    assert (cfg.batch_size, cfg.epochs, cfg.learning_rate, cfg.warmup_ratio) == (8, 2.0, 2e-4, 0.06)
    assert fit_to_data(cfg, DataFacts(100, 0, 64)) == (cfg, {})


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_run_records_each_choice_and_the_head_trains_at_its_own_rate(store, prepared, tiny_encoder, method):
    dataset = prepared(intent_rows(120, words=(6, 6)), "intents").id
    result = train(store, TrainConfig(dataset=dataset, base_model=str(tiny_encoder), method=method, max_steps=2,
                                      threads=1, seed=0))
    run = store.get_run(result["run"])
    chosen = run["environment"]["setup"]["defaults"]
    assert set(chosen) == {"batch_size", "learning_rate", "epochs", "warmup_ratio", "head_learning_rate"}
    assert run["config_resolved"]["batch_size"] == chosen["batch_size"]["value"] == 8
    assert run["config_resolved"]["head_learning_rate"] == 1e-3
    assert "train examples" in chosen["batch_size"]["why"]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_only_the_new_head_gets_the_head_learning_rate(store, prepared, tiny_encoder, method):
    from tunelab.train.setup import build

    dataset = prepared(intent_rows(40, words=(6, 6)), "intents").id
    setup = build(store, TrainConfig(dataset=dataset, base_model=str(tiny_encoder), method=method, threads=1))
    rates = {id(p): group["initial_lr"] for group in setup.optimizer.param_groups for p in group["params"]}
    head = {name for name, p in setup.model.named_parameters() if p.requires_grad and rates[id(p)] == 1e-3}
    assert head and all("classifier" in name for name in head)
    body = {name for name, p in setup.model.named_parameters() if p.requires_grad} - head
    assert body and {rates[id(p)] for n, p in setup.model.named_parameters() if n in body} == {setup.cfg.learning_rate}
