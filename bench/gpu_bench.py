"""GPU training throughput: SFT of a SmolLM2-135M on the customer-support data in bf16, LoRA and full, with tunelab's
defaults, against a plain PyTorch/transformers loop over the same padded batches (the usual hand-written baseline).

Needs CUDA (it exits with a message without). Throughput depends on the architecture and shapes, not on the weights'
values, so `--base` may be any folder with the model's config and tokenizer: with `--random-init` the weights are
drawn fresh from the config (for a machine where the packaged weights are not installed).

    python bench/gpu_bench.py [--base smollm2-135m] [--random-init] [--steps 60] [--batch 32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "customer_support" / "customer_support.csv"


def bf16_ceiling_tflops(n: int = 8192, repeats: int = 10) -> float:
    """Dense bf16 matmul rate on this GPU: the ceiling model-FLOP utilisation is measured against."""
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def random_copy(base: str, out: Path) -> str:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base), dtype=torch.float32)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return str(out)


def prepare_data(store) -> str:
    from tunelab.data import import_data, prepare
    from tunelab.data.prep_config import PrepConfig

    imported = import_data(store, [str(DATA)], name="customer-support", mapping={"response": "output"})
    config = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False},
                                        "leakage": {"near": False}})
    return prepare(store, imported.version.id, config).id


def tunelab_run(store, dataset: str, base: str, method: str, steps: int, batch: int) -> dict:
    """tunelab's recipe with its defaults (packing, bf16 mixed precision); tokens/s over the loop from its metrics."""
    from tunelab.train.config import TrainConfig
    from tunelab.train.recipe import train

    cfg = TrainConfig.model_validate({"dataset": dataset, "base_model": base, "method": method, "max_steps": steps,
                                      "batch_size": batch, "eval_every": steps, "checkpoint_every": steps,
                                      "max_seq_length": 256})
    torch.cuda.reset_peak_memory_stats()
    result = train(store, cfg)
    run = store.get_run(result["run"])
    points = [json.loads(line) for line in (Path(run["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    train_points = [p for p in points if p["kind"] == "train"]
    return {"tokens_per_s": train_points[-1]["tokens_per_s"], "steps": len(train_points),
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30}


def plain_loop(store, dataset: str, base: str, method: str, steps: int, batch: int) -> dict:
    """The baseline: padded batches of `batch` examples in dataset order, model in bf16 autocast, AdamW; the same
    loss targets (tunelab's encoding), no packing, no length grouping."""
    from tunelab.train import data as tdata
    from tunelab.train.config import TrainConfig
    from tunelab.train.setup import build

    cfg = TrainConfig.model_validate({"dataset": dataset, "base_model": base, "method": method, "max_steps": steps,
                                      "batch_size": batch, "packing": False, "max_seq_length": 256})
    setup = build(store, cfg)  # the same model, LoRA layers, tokenisation and optimizer as tunelab's run
    model, examples = setup.model.train(), setup.train  # dropout on, as in any training loop
    torch.cuda.reset_peak_memory_stats()
    tokens, started = 0, None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps, as tunelab's first steps also pay for kernel selection
            torch.cuda.synchronize()
            started, tokens = time.perf_counter(), 0
        start = (step * batch) % (len(examples.input_ids) - batch)
        indices = list(range(start, start + batch))
        ids = [examples.input_ids[i] for i in indices]
        labels = [examples.labels[i] for i in indices]
        collated = tdata.collate_sft(ids, labels, packing=False, pad_id=setup.tokenizer.pad_token_id,
                                     row_tokens=cfg.max_seq_length)
        collated = {k: v.cuda() for k, v in collated.items() if k != "num_tokens"}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=collated["input_ids"], attention_mask=collated["attention_mask"],
                        labels=collated["labels"])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        setup.optimizer.step()
        setup.scheduler.step()
        setup.optimizer.zero_grad(set_to_none=True)
        tokens += sum(len(x) for x in ids)
    torch.cuda.synchronize()
    return {"tokens_per_s": tokens / (time.perf_counter() - started), "steps": steps,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30}


SETTING = ("SFT of a SmolLM2-135M ({init}; N = {params:,} params) on examples/customer_support (tunelab import + "
           "prepare, PII and near-dedup off), {steps} steps of batch {batch}, max length 256, bf16 autocast, AdamW lr "
           "by method (LoRA 2e-4 r16/a32 all-linear, full 5e-5), {device}, torch {torch}. tunelab: recipe.train with "
           "its defaults (packing into rows with position ids reset per example, output layer at target positions "
           "only, passes of <= 16384 tokens; a 3-step warm-up run first); tokens/s from its metric stream over the "
           "whole loop, first steps included. plain_loop: the same model, LoRA layers, tokenisation and optimizer "
           "from tunelab's setup, padded batches of {batch} examples in dataset order, model(labels=...) loss, 2 "
           "warm-up steps not timed. tokens = real (non-pad) tokens. mfu_pct = 6 x N x tokens/s over a bf16 "
           "8192^3 matmul ceiling measured in the same run ({ceiling:.0f} TFLOP/s).")


def bench(base: str, random_init: bool, steps: int, batch: int) -> dict:
    """Every case on this GPU, with the setting that produced it (the format of bench/results.json)."""
    from transformers import AutoModelForCausalLM

    from tunelab.store import open_store

    home = Path(tempfile.mkdtemp(prefix="tunelab-gpu-bench-"))
    os.environ["TUNELAB_HOME"] = str(home)
    store = open_store()
    base = random_copy(base, home / "base") if random_init else base
    dataset = prepare_data(store)
    ceiling = bf16_ceiling_tflops()
    params = AutoModelForCausalLM.from_pretrained(base).num_parameters()
    cases = {}
    for method in ("lora", "full"):
        tunelab_run(store, dataset, base, method, 3, batch)  # warm-up: CUDA context, kernels, allocator
        for name, runner in (("tunelab", tunelab_run), ("plain_loop", plain_loop)):
            measured = runner(store, dataset, base, method, steps, batch)
            measured["mfu_pct"] = 100 * 6 * params * measured["tokens_per_s"] / (ceiling * 1e12)
            cases[f"{method}_{name}"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in measured.items()}
            print(f"{method:<5} {name:<11} {measured['tokens_per_s']:>10,.0f} tok/s  "
                  f"MFU {measured['mfu_pct']:5.2f}%  peak {measured['peak_gpu_gib']:.2f} GiB", flush=True)
        ratio = cases[f"{method}_tunelab"]["tokens_per_s"] / cases[f"{method}_plain_loop"]["tokens_per_s"]
        cases[f"{method}_tunelab"]["x_plain_loop"] = round(ratio, 2)
        print(f"{method:<5} tunelab / plain loop: x{ratio:.2f}", flush=True)
    init = "weights drawn from its config" if random_init else "its weights"
    setting = SETTING.format(init=init, params=params, steps=steps, batch=batch, device=torch.cuda.get_device_name(0),
                             torch=torch.__version__, ceiling=ceiling)
    props = torch.cuda.get_device_properties(0)
    machine = f"1 GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; {os.cpu_count()} CPU cores"
    return {"machine": machine, "setting": setting, **cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_bench needs a CUDA GPU; this machine has none (make bench runs the CPU benchmarks)")
    os.environ.setdefault("TUNELAB_PROGRESS", "0")
    result = bench(args.base, args.random_init, args.steps, args.batch)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
