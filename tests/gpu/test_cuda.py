"""The CUDA paths: mixed precision (bf16, fp16 with loss scaling), QLoRA, exact resume and serving on a GPU.

CI has no GPU, so these skip there; on a machine with one, `pytest tests/gpu` runs them (the results of the last
run on a GPU are in docs/gpu.md).
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toydata import intent_rows
from trainruns import loss_curve, start_training, wait_for_checkpoint
from tunelab.train.config import TrainConfig
from tunelab.train.device import plan_device
from tunelab.train.recipe import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (these test the GPU paths)")


def _cfg(**values) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 0, **values})


def _run_dir(store, result: dict) -> Path:
    return Path(store.get_run(result["run"])["output_dir"])


def _learned(losses: list[float]) -> bool:
    return sum(losses[-3:]) < 0.95 * sum(losses[:3])  # these tiny LoRA runs reach about 0.90 on a CPU


@pytest.fixture
def intents(prepared) -> str:
    return prepared(intent_rows(160, words=(6, 6)), "intents").id


def test_auto_is_bf16_mixed_precision_where_the_gpu_has_it():
    plan = plan_device(method="lora")
    assert plan.device == "cuda"
    assert plan.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)


def test_bf16_lora_keeps_the_adapter_in_fp32_and_learns(store, greetings, tiny_causal_lm):
    result = train(store, _cfg(dataset=greetings, base_model=str(tiny_causal_lm), precision="bf16",
                               learning_rate=1e-2, epochs=3, max_tokens=128, lora={"r": 8, "alpha": 16}))
    setup = store.get_run(result["run"])["environment"]["setup"]
    assert result["state"] == "succeeded" and (setup["device"], setup["dtype"]) == ("cuda", "torch.bfloat16")
    assert _learned(loss_curve(_run_dir(store, result)))
    adapter = load_file(str(Path(result["output"]) / "adapter_model.safetensors"))
    assert {t.dtype for t in adapter.values()} == {torch.float32}


def test_bf16_full_fine_tuning_trains_fp32_master_weights(store, intents, tiny_encoder):
    result = train(store, _cfg(dataset=intents, base_model=str(tiny_encoder), method="full", precision="bf16",
                               learning_rate=1e-3, epochs=6, batch_size=8))
    curves = [loss_curve(_run_dir(store, result), kind) for kind in ("train", "eval")]
    assert result["state"] == "succeeded" and result["best_val_accuracy"] >= 0.9, curves
    weights = load_file(str(Path(result["output"]) / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_fp16_with_loss_scaling_learns_and_resumes_exactly(store, greetings, tiny_causal_lm, cli, tmp_path):
    settings = {"dataset": greetings, "base_model": str(tiny_causal_lm), "precision": "fp16", "learning_rate": 3e-3,
                "max_steps": 60, "max_tokens": 64, "checkpoint_every": 4, "eval_every": 20, "seed": 0,
                "lora": {"dropout": 0.1}}
    reference = train(store, TrainConfig.model_validate(settings))
    ref_losses = loss_curve(_run_dir(store, reference))
    assert _learned(ref_losses)
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps(settings))
    process = start_training(store, config)
    run = wait_for_checkpoint(store, 12, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = cli("train", "--resume", run["id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    losses = loss_curve(Path(run["output_dir"]))
    assert len(losses) == 60
    # GPU kernels may sum in another order from one launch to the next: close, not bit-equal
    assert losses == pytest.approx(ref_losses, rel=2e-3)


def test_qlora_trains_an_adapter_on_a_4bit_base(store, greetings, tiny_causal_lm, cli):
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes")
    result = train(store, _cfg(dataset=greetings, base_model=str(tiny_causal_lm), method="qlora",
                               learning_rate=1e-2, epochs=3, max_tokens=128, lora={"r": 8, "alpha": 16}))
    assert result["state"] == "succeeded"
    assert any("NF4" in note for note in store.get_run(result["run"])["environment"]["setup"]["notes"])
    assert _learned(loss_curve(_run_dir(store, result)))
    merged = cli("models", "merge", result["model"], "--json")
    assert merged.returncode == 0, merged.stderr


def test_the_server_generates_on_the_gpu_as_transformers_does(tiny_causal_lm):
    from tunelab.serve.decode import SamplingParams, generate, make_rows
    from tunelab.serve.engine import Delta, Job
    from tunelab.serve.loaders import load_causal, tokenizer_for

    model, tokenizer = load_causal(str(tiny_causal_lm)), tokenizer_for(str(tiny_causal_lm))
    assert model.device.type == "cuda"
    prompt = tokenizer("Where is my order number 12?")["input_ids"]

    async def served() -> str:
        job = Job([prompt], [12], SamplingParams(max_tokens=12, temperature=0), adapter=None, tokenizer=tokenizer,
                  stop_ids={tokenizer.eos_token_id})
        generate(model, make_rows(job, model.device), tokenizer.pad_token_id)
        return "".join([e.text async for e in job.events(_connected) if isinstance(e, Delta)])

    expected = model.generate(torch.tensor([prompt], device=model.device), max_new_tokens=12, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    assert asyncio.run(served()) == tokenizer.decode(expected[0, len(prompt):], skip_special_tokens=True)


async def _connected() -> bool:
    return False
