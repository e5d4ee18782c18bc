"""Training benchmarks: LoRA SFT of SmolLM2-135M (tunelab vs TRL SFTTrainer) here, and MiniLM classifiers on three
datasets (tunelab vs transformers.Trainer) in cls_bench.py, which uses this module's timing hooks.

Every contender runs in its own process (`python bench/train_bench.py --contender NAME --spec SPEC --out json`),
so peak RSS, imports and thread settings do not leak between them; all use torch.set_num_threads(os.cpu_count())
(TRAIN_BENCH_THREADS overrides it, for a machine shared with other work).
The parent prepares the data once (tunelab import + prepare), writes a spec file, runs the contenders one after the
other and compares what they report. Quality is measured by one shared function for every contender, on a model
loaded fresh from the adapter each of them saved.

Timing: `train_s` is the wall time of the training loop proper (tunelab: `run_loop`; TRL/Trainer: `trainer.train()`)
minus the time spent in in-loop evaluation and checkpoint writes, which are reported apart (`checkpoint_s`). Model
loading, tokenisation and dataset preparation are outside it.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "TRAIN_BENCH_RESULT "

# --- SFT: the same for every contender ------------------------------------------------------------------------------
SFT_BASE = "smollm2-135m"
SFT_SIZES = {"full": (256, 64), "quick": (3, 3)}  # train, validation examples
SFT_MIN_TOKENS, SFT_MAX_TOKENS = 20, 250  # chat-template length of an example, smollm2 tokenizer
SFT_QUICK_MAX_TOKENS = 100  # quick mode: short examples only, so one step is cheap
SFT_SELECTION_SEED = 1234
SFT_LR, SFT_BATCH, SFT_MAX_LEN, SFT_EPOCHS, SEED, WARMUP = 2e-4, 8, 256, 1, 42, 0.06
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
SFT_CONTENDERS = ("tunelab", "trl_default", "trl_packed")
# Opt-in (TRAIN_BENCH_EXTRA=tunelab_unpacked,trl_packed_nogc): tunelab with packing off (length-grouped padded
# batches of 8: per-example attention instead of one 2,048-token block-diagonal row), and TRL packed without the
# gradient checkpointing TRL turns on by default (tunelab trains without it).
SFT_EXTRA = ("tunelab_unpacked", "trl_packed_nogc")

# ====================================================================================================== shared helpers


def _environment() -> None:
    """Offline, quiet, and one converted smollm2 shared by every process and run."""
    for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false", "TUNELAB_PROGRESS": "0",
                       "TUNELAB_MODEL_CACHE": str(ROOT / ".tunelab" / "base-models")}.items():
        os.environ.setdefault(key, value)


def _quiet() -> None:
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def matmul_gflops(repeats: int = 5, per_repeat: int = 2) -> float:
    """Ceiling: fp32 torch.mm of 2048x2048 matrices at the current thread count; best of `repeats` windows."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(2):
        torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(per_repeat):
            torch.mm(a, b)
        best = max(best, 2 * 2048**3 * per_repeat / (time.perf_counter() - started) / 1e9)
    return best


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(row: dict[str, str]) -> list[dict[str, str]]:
    """An instruction row as tunelab turns it into a chat (no `input` column here)."""
    return [{"role": "user", "content": row["instruction"]}, {"role": "assistant", "content": row["output"]}]


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def response_targets(tokenizer: Any, row: dict[str, str]) -> tuple[list[int], int, int]:
    """Token ids of the rendered chat, and the [first, last] positions of its response tokens: the assistant text
    and its <|im_end|>, not the newline the template writes after it."""
    full = tokenizer(_render(tokenizer, chat(row), False), add_special_tokens=False)["input_ids"]
    prompt = tokenizer(_render(tokenizer, chat(row)[:1], True), add_special_tokens=False)["input_ids"]
    if full[:len(prompt)] != prompt:
        raise RuntimeError("the prompt's tokens are not a prefix of the conversation's tokens")
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    last = max(i for i, t in enumerate(full) if t == end_id)
    return full, len(prompt), last


def response_loss(base_path: str, adapter_dir: str, rows: list[dict[str, str]], batch: int = 8) -> dict[str, float]:
    """Mean cross-entropy per response token over `rows` (token-weighted), base model + the saved LoRA adapter.

    The one quality measure for every SFT contender: fresh fp32 model from disk, right-padded batches with an
    attention mask, loss on the assistant text and its <|im_end|> only."""
    import torch
    import torch.nn.functional as F
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    encoded = [response_targets(tokenizer, r) for r in rows]
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch):
            part = encoded[start:start + batch]
            width = max(len(ids) for ids, _, _ in part)
            ids = torch.full((len(part), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for i, (row_ids, _, _) in enumerate(part):
                ids[i, :len(row_ids)] = torch.tensor(row_ids)
                mask[i, :len(row_ids)] = 1
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            for i, (row_ids, first, last) in enumerate(part):
                predicted = logits[i, first - 1:last].float()  # position t predicts token t + 1
                targets = torch.tensor(row_ids[first:last + 1])
                total += float(F.cross_entropy(predicted, targets, reduction="sum"))
                count += len(targets)
    return {"val_loss": total / count, "val_tokens": count}


# ========================================================================================= tunelab with timing hooks


def _tunelab_train(home: str, config: dict[str, Any]) -> dict[str, Any]:
    """tunelab.train.recipe.train, with run_loop, in-loop evaluation and checkpoint writes timed from outside."""
    from tunelab.store import open_store
    from tunelab.train import loop, recipe
    from tunelab.train.config import TrainConfig
    from tunelab.workspace import Workspace

    timing: dict[str, Any] = {"eval_s": 0.0, "evals": 0, "checkpoint_s": 0.0, "checkpoints": 0}
    evaluate, save, run_loop = loop.evaluate, loop._save, recipe.run_loop

    def timed_evaluate(setup):
        started = time.perf_counter()
        metrics = evaluate(setup)
        timing["eval_s"] += time.perf_counter() - started
        timing["evals"] += bool(metrics)
        return metrics

    def timed_save(setup, state, ctx):
        started = time.perf_counter()
        save(setup, state, ctx)
        timing["checkpoint_s"] += time.perf_counter() - started
        timing["checkpoints"] += 1

    step_times: list[float] = []
    train_step = loop.train_step

    def timed_train_step(*args, **kwargs):
        started = time.perf_counter()
        out = train_step(*args, **kwargs)
        step_times.append(time.perf_counter() - started)
        return out

    def timed_run_loop(setup, state, ctx):
        timing["setup"] = setup
        started = time.perf_counter()
        outcome = run_loop(setup, state, ctx)
        timing["loop_s"] = time.perf_counter() - started
        timing["outcome"] = outcome
        return outcome

    loop.evaluate, loop._save, loop.train_step, recipe.run_loop = (timed_evaluate, timed_save, timed_train_step,
                                                                   timed_run_loop)
    store = open_store(Workspace(home=Path(home), database_url=f"sqlite:///{Path(home) / 'tunelab.db'}"))
    result = recipe.train(store, TrainConfig.model_validate(config))
    setup, state = timing.pop("setup"), timing.pop("outcome").state
    batches = [b for plan in setup.plans[:state.epoch] for b in plan]
    if state.epoch < len(setup.plans):
        batches += setup.plans[state.epoch][:state.batch_in_epoch]
    lengths = setup.train.lengths
    packed = setup.cfg.packing and setup.cfg.task == "sft"  # one padding-free row per batch
    padded = sum(sum(lengths[i] for i in b) if packed else len(b) * max(lengths[i] for i in b) for b in batches)
    return {**timing, "train_s": timing["loop_s"] - timing["eval_s"] - timing["checkpoint_s"],
            "steps": state.step, "own_tokens": state.tokens_seen, "examples": sum(map(len, batches)),
            "padded_tokens": padded, "step_s_median": _steady(step_times), "adapter": result["output"],
            "early_stopped": result.get("early_stopped"), "best_step": result.get("best_step"),
            **_param_counts(setup.model), "label2id": setup.label2id, "lora_layers": _lora_layers(setup.model)}


def _param_counts(model: Any) -> dict[str, int]:
    """Trainable and frozen parameters, for a PEFT model and for a plain one (full fine-tuning) alike."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "frozen_params": sum(p.numel() for p in model.parameters()) - trainable}


def _lora_layers(model: Any) -> int:
    return sum(1 for name, _ in model.named_modules() if name.endswith(".lora_A"))


def _steady(times: list[float]) -> float | None:
    """Median step time without the first step (which pays one-time costs)."""
    return statistics.median(times[1:]) if len(times) > 1 else None


def _timed_trainer_train(trainer: Any) -> dict[str, Any]:
    """trainer.train() with its checkpoint writes (and the best checkpoint's reload) and in-loop evaluation timed
    apart, step times, and what went through the model: rows, real tokens and tokens with padding, counted in
    training_step (the dataloader fetches one batch ahead, so a collator would count a batch too many when
    max_steps ends an epoch early)."""
    from transformers import TrainerCallback

    timing: dict[str, Any] = {"checkpoint_s": 0.0, "checkpoints": 0, "eval_s": 0.0, "evals": 0, "padded_tokens": 0,
                              "rows": 0, "real_tokens": 0}
    training_step = trainer.training_step
    step_times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.started)

    def counting_training_step(model, inputs, *args, **kwargs):
        ids = inputs["input_ids"]
        timing["padded_tokens"] += int(ids.numel())
        timing["rows"] += int(ids.shape[0])
        mask = inputs.get("attention_mask")
        timing["real_tokens"] += int(mask.sum()) if mask is not None else int(ids.numel())
        return training_step(model, inputs, *args, **kwargs)

    trainer.training_step = counting_training_step
    trainer.add_callback(StepTimer())
    trainer._save_checkpoint = _clocked(trainer._save_checkpoint, timing, "checkpoint")
    trainer._load_best_model = _clocked(trainer._load_best_model, timing, "checkpoint")
    trainer.evaluate = _clocked(trainer.evaluate, timing, "eval")
    started = time.perf_counter()
    trainer.train()
    timing["loop_s"] = time.perf_counter() - started
    timing["train_s"] = timing["loop_s"] - timing["checkpoint_s"] - timing["eval_s"]
    timing["step_s_median"] = _steady(step_times)
    return timing


def _clocked(method: Any, timing: dict[str, Any], key: str) -> Any:
    """`method`, adding its wall time to timing[key + "_s"] and its calls to timing[key + "s"]."""
    def clocked(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            timing[f"{key}_s"] += time.perf_counter() - started
            timing[f"{key}s"] += 1
    return clocked


# ===================================================================================================== SFT contenders


def _sft_tunelab(spec: dict[str, Any], packing: bool = True) -> dict[str, Any]:
    config = {"dataset": spec["dataset_id"], "base_model": SFT_BASE, "task": "sft", "method": "lora",
              "epochs": SFT_EPOCHS, "learning_rate": SFT_LR, "batch_size": SFT_BATCH, "max_seq_length": SFT_MAX_LEN,
              "seed": spec.get("seed", SEED), "warmup_ratio": WARMUP, "precision": "fp32", "packing": packing,
              "lora": {"r": LORA["r"], "alpha": LORA["alpha"], "dropout": LORA["dropout"],
                       "target_modules": "all-linear"}}
    return _tunelab_train(spec["home"], config)


def _sft_trl(spec: dict[str, Any], *, packing: bool, gradient_checkpointing: bool | None = None) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    rows = _read_jsonl(spec["train_path"])
    # conversational prompt-completion: TRL renders the same chat template; completion_only_loss defaults to True
    # for this format (SmolLM2's template has no {% generation %} markers for assistant_only_loss)
    dataset = Dataset.from_list([{"prompt": chat(r)[:1], "completion": chat(r)[1:]} for r in rows])
    extra = {} if gradient_checkpointing is None else {"gradient_checkpointing": gradient_checkpointing}
    args = SFTConfig(output_dir=str(Path(spec["workdir"]) / f"trl-{os.getpid()}"), learning_rate=SFT_LR,
                     per_device_train_batch_size=SFT_BATCH, num_train_epochs=SFT_EPOCHS, seed=spec.get("seed", SEED),
                     max_length=SFT_MAX_LEN, warmup_steps=WARMUP, bf16=False, packing=packing, report_to="none",
                     disable_tqdm=True, **extra)
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules="all-linear", task_type="CAUSAL_LM", bias="none")
    trainer = SFTTrainer(model=spec["base_path"], args=args, train_dataset=dataset, peft_config=peft_config)
    timing = _timed_trainer_train(trainer)
    adapter = Path(spec["workdir"]) / f"adapter-{os.getpid()}"
    out = {**timing, "steps": trainer.state.global_step, "own_tokens": int(trainer._total_train_tokens),
           "examples": len(rows) * SFT_EPOCHS, **_param_counts(trainer.model),
           "lora_layers": _lora_layers(trainer.model), "gradient_checkpointing": args.gradient_checkpointing,
           "padding_free": trainer.padding_free, "optim": str(args.optim), "adapter": str(adapter),
           "peak_rss_mib": peak_rss_mib()}
    trainer.save_model(str(adapter))
    return out


SFT_RUNNERS = {
    "tunelab": _sft_tunelab,
    "tunelab_unpacked": lambda spec: _sft_tunelab(spec, packing=False),
    "trl_default": lambda spec: _sft_trl(spec, packing=False),
    "trl_packed": lambda spec: _sft_trl(spec, packing=True),
    "trl_packed_nogc": lambda spec: _sft_trl(spec, packing=True, gradient_checkpointing=False),
}


def _run_sft_contender(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    gflops = matmul_gflops()
    out = SFT_RUNNERS[name](spec)
    out.setdefault("peak_rss_mib", peak_rss_mib())  # read before the validation model is loaded
    gc.collect()
    out.update(response_loss(spec["base_path"], out["adapter"], _read_jsonl(spec["val_path"])))
    tokens = spec["tokens"] * SFT_EPOCHS
    out.update(tokens=tokens, matmul_gflops=gflops, tokens_per_s=tokens / out["train_s"],
               mfu=6 * out["frozen_params"] * tokens / out["train_s"] / (gflops * 1e9))
    return out


# ================================================================================================ parent: run + report


def _run_contender(bench: str, name: str, spec_path: Path) -> dict[str, Any]:
    log = spec_path.parent / f"{bench}-{name}.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--contender", name, "--spec", str(spec_path),
               "--out", "json"]
    started = time.perf_counter()
    with log.open("w") as f:
        code = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith(RESULT_PREFIX)]
    if code != 0 or not lines:
        raise RuntimeError(f"{bench} contender {name} failed (exit {code}); the end of its output:\n{text[-4000:]}")
    return {**json.loads(lines[-1][len(RESULT_PREFIX):]), "process_s": wall}


def select_sft_rows(tokenizer: Any, n_train: int, n_val: int, max_tokens: int = SFT_MAX_TOKENS
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A fixed subset of customer_support.csv: rows in a seeded random order, kept when their rendered chat is
    SFT_MIN_TOKENS..max_tokens smollm2 tokens; the first n_train are train, the next n_val validation."""
    path = ROOT / "examples" / "customer_support" / "customer_support.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{"instruction": r["instruction"], "output": r["response"]} for r in csv.DictReader(f)]
    random.Random(SFT_SELECTION_SEED).shuffle(rows)
    kept: list[dict[str, Any]] = []
    for start in range(0, len(rows), 256):
        for row in rows[start:start + 256]:
            length = len(response_targets(tokenizer, row)[0])
            if SFT_MIN_TOKENS <= length <= max_tokens:
                kept.append({**row, "tokens": length})
        if len(kept) >= n_train + n_val:
            break
    if len(kept) < n_train + n_val:
        raise RuntimeError(f"only {len(kept)} examples of {SFT_MIN_TOKENS}..{max_tokens} tokens")
    return kept[:n_train], kept[n_train:n_train + n_val]


def _store(home: Path):
    from tunelab.store import open_store
    from tunelab.workspace import Workspace

    return open_store(Workspace(home=home, database_url=f"sqlite:///{home / 'tunelab.db'}"))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("nan")


def bench_sft(quick: bool = False, seeds: tuple[int, ...] = ()) -> dict[str, Any]:
    """All SFT contenders at seed 42; with `seeds`, instead tunelab and TRL default once per seed (val loss spread)."""
    _environment()
    _quiet()
    from transformers import AutoTokenizer

    from tunelab.data import import_data, prepare
    from tunelab.data.prep_config import PrepConfig
    from tunelab.data.versions import read_split
    from tunelab.models import resolve_base_model

    n_train, n_val = SFT_SIZES["quick" if quick else "full"]
    base = resolve_base_model(SFT_BASE)  # converts the packaged GGUF once, outside every timing
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    max_tokens = SFT_QUICK_MAX_TOKENS if quick else SFT_MAX_TOKENS
    train, val = select_sft_rows(tokenizer, n_train, n_val, max_tokens)
    extra = [n for n in os.environ.get("TRAIN_BENCH_EXTRA", "").replace(",", " ").split() if n]
    unknown = [n for n in extra if n not in SFT_EXTRA]
    if unknown:
        raise ValueError(f"TRAIN_BENCH_EXTRA: unknown contender(s) {unknown}; choose from {SFT_EXTRA}")
    contenders = SFT_CONTENDERS + tuple(n for n in SFT_EXTRA if n in extra)
    runs = [(name, SEED) for name in contenders] if not seeds else [
        (name, seed) for seed in seeds for name in ("tunelab", "trl_default")]
    with tempfile.TemporaryDirectory(prefix="train-bench-sft-") as tmp:
        work = Path(tmp)
        train_path = _write_jsonl([{"instruction": r["instruction"], "output": r["output"]} for r in train],
                                  work / "train.jsonl")
        val_path = _write_jsonl([{"instruction": r["instruction"], "output": r["output"]} for r in val],
                                work / "validation.jsonl")
        store = _store(work / "home")
        raw = import_data(store, [str(train_path)], name="support-bench").version
        version = prepare(store, raw.id, PrepConfig.model_validate(
            {"normalize": {"enabled": False}, "dedup": {"exact": False, "near": False}, "pii": {"enabled": False},
             "split": {"enabled": False}, "leakage": {"enabled": False}}))
        prepared = read_split(version, "train").to_pydict()
        if (prepared["instruction"], prepared["output"]) != ([r["instruction"] for r in train],
                                                             [r["output"] for r in train]):
            raise RuntimeError("tunelab's prepared rows differ from the selected subset")
        spec = {"bench": "sft", "quick": quick, "workdir": str(work), "home": str(work / "home"),
                "dataset_id": version.id, "base_path": base.path, "train_path": str(train_path),
                "val_path": str(val_path), "tokens": sum(r["tokens"] for r in train)}
        results = {}
        for name, seed in runs:
            spec_path = work / f"spec-{seed}.json"
            spec_path.write_text(json.dumps({**spec, "seed": seed}))
            results[name if not seeds else f"{name}_seed{seed}"] = _run_contender("sft", name, spec_path)
    if seeds:
        return _report_sft_seeds(results, seeds)
    return _report_sft(results, n_train, n_val, max_tokens, train)


def _report_sft_seeds(results: dict[str, dict[str, Any]], seeds: tuple[int, ...]) -> dict[str, Any]:
    """Validation loss per seed and its mean and spread: is a gap at one seed more than seed noise?"""
    rows = {}
    for name in ("tunelab", "trl_default"):
        losses = [results[f"{name}_seed{s}"]["val_loss"] for s in seeds]
        rows[name] = {**{f"val_loss_seed{s}": round(v, 4) for s, v in zip(seeds, losses, strict=True)},
                      "val_loss_mean": round(statistics.mean(losses), 4),
                      "val_loss_sd": round(statistics.stdev(losses), 4) if len(losses) > 1 else None,
                      "tokens_per_s_mean": round(statistics.mean(
                          results[f"{name}_seed{s}"]["tokens_per_s"] for s in seeds), 1)}
        print(f"  SFT {name}: val loss " + ", ".join(f"{v:.4f}" for v in losses)
              + f" (seeds {', '.join(map(str, seeds))}; mean {rows[name]['val_loss_mean']:.4f})", flush=True)
    setting = (f"The train_sft setting (tunelab defaults vs TRL SFTTrainer defaults, fp32, same data and "
               f"hyperparameters) at seeds {', '.join(map(str, seeds))} instead of {SEED}: the seed sets LoRA's "
               "initialisation, dropout and data order in both. val_loss as in train_sft (one function for both).")
    return {"setting": setting, **rows}


def _report_sft(results: dict[str, dict[str, Any]], n_train: int, n_val: int, max_tokens: int,
                train: list[dict[str, Any]]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    labels = {"tunelab": "tunelab (packed)", "tunelab_unpacked": "tunelab, packing off", "trl_default": "TRL default",
              "trl_packed": "TRL packed (bfd)", "trl_packed_nogc": "TRL packed, no grad ckpt"}
    for name, r in results.items():
        row = {"examples": r["examples"], "tokens": r["tokens"], "steps": r["steps"], "train_s": round(r["train_s"], 1),
               "tokens_per_s": round(r["tokens_per_s"], 1), "peak_rss_mib": round(r["peak_rss_mib"]),
               "val_loss": round(r["val_loss"], 4), "mfu_pct": round(100 * r["mfu"], 1),
               "matmul_gflops": round(r["matmul_gflops"]), "checkpoint_s": round(r["checkpoint_s"], 1),
               "padded_tokens": r["padded_tokens"], "step_s_median": _round(r["step_s_median"], 1),
               "process_s": round(r["process_s"])}
        for peer in ("trl_default", "trl_packed"):
            if peer in results and peer != name and not (name == "trl_default" and peer == "trl_packed"):
                row[f"x_tok_s_vs_{peer}"] = _ratio(r["tokens_per_s"], results[peer]["tokens_per_s"])
                row[f"x_rss_vs_{peer}"] = _ratio(r["peak_rss_mib"], results[peer]["peak_rss_mib"])
        rows[name] = row
        if r["own_tokens"] != r["tokens"]:
            print(f"  note: {name} counted {r['own_tokens']:,} tokens itself; the data has {r['tokens']:,}", flush=True)
        ratios = ", ".join(f"x{row[k]:.2f} tok/s vs {k.removeprefix('x_tok_s_vs_').replace('_', ' ')}"
                           for k in row if k.startswith("x_tok_s_vs_"))
        print(f"  SFT {labels[name]}: {r['tokens_per_s']:,.0f} tok/s ({r['steps']} steps, {r['train_s']:.1f} s), "
              f"peak RSS {r['peak_rss_mib']:,.0f} MiB, val loss {r['val_loss']:.4f}, MFU {100 * r['mfu']:.1f}% of "
              f"{r['matmul_gflops']:.0f} GFLOP/s, {r['padded_tokens'] / r['tokens'] - 1:.0%} padding, process "
              f"{r['process_s']:.0f} s" + (f" ({ratios})" if ratios else ""), flush=True)
    lengths = [r["tokens"] for r in train]
    first = next(iter(results.values()))
    setting = (
        f"LoRA SFT of SmolLM2-135M-Instruct (tunelab's converted fp32 copy; N = {first['frozen_params']:,} frozen "
        f"params, {first['trainable_params']:,} LoRA params on {first['lora_layers']} linear layers: "
        f"q/k/v/o/gate/up/down, r={LORA['r']}, alpha={LORA['alpha']}, dropout {LORA['dropout']}). Data: "
        f"{n_train} train + {n_val} validation rows of examples/customer_support (instruction -> response, seeded "
        f"order, kept when the chat-template render is {SFT_MIN_TOKENS}..{max_tokens} tokens; train tokens "
        f"{sum(lengths):,}, mean {statistics.mean(lengths):.0f}). All: fp32, {SFT_EPOCHS} epoch, lr {SFT_LR}, linear "
        f"decay, {WARMUP:.0%} warmup, seed {SEED}, max length {SFT_MAX_LEN}, batch {SFT_BATCH}, AdamW, clip 1.0, no "
        f"eval during training, sdpa attention, {_threads()} torch threads. tunelab: recipe.train on a dataset made "
        "by tunelab import + prepare with every step off (same rows), packing on (its defaults: first-fit bins of "
        f"batch x mean length = {round(SFT_BATCH * statistics.mean(lengths)):,} tokens per step, packed into rows of "
        "at most max length with position ids reset per example, run in forward/backward passes of at most 512 "
        "tokens (forward_tokens), the output layer applied only at target positions; loss on assistant text + "
        "<|im_end|>), its default checkpoints (4 per epoch). TRL 1.16 SFTTrainer: defaults (gradient "
        "checkpointing ON, fused LM head computing log-probs, entropy and token accuracy every step, "
        "adamw_torch_fused, DataCollatorForLanguage"
        "Modeling) except bf16=False, lr, batch, epochs, seed, warmup, max_length; conversational prompt/"
        "completion rows (completion-only loss by default: assistant text + <|im_end|> + the newline after it); "
        "'TRL default': packing off, right padding per batch of 8 examples; 'TRL packed': packing=True, bfd "
        "strategy, which turns padding_free on (8 rows of <=256 tokens flattened into one row; works on CPU with "
        "sdpa: transformers builds the block-diagonal mask from position_ids). tokens_per_s = sum of the train "
        "examples' chat-template token counts (no padding) / train_s; train_s = the training loop (tunelab "
        "run_loop, TRL trainer.train()) minus checkpoint writes (checkpoint_s, shown apart), model load and "
        "tokenisation excluded. peak_rss_mib: ru_maxrss of the contender's own process after training. val_loss: "
        "one function for all, fp32 base + saved adapter loaded fresh, mean CE per response token (assistant text "
        f"+ <|im_end|>) over the {n_val} validation rows. mfu_pct = 6 x N x tokens / train_s / matmul ceiling "
        "(6N per token is the usual forward+backward estimate; with frozen base weights the real work is nearer "
        "4N, 6N with gradient checkpointing' extra forward); ceiling: best fp32 torch.mm 2048x2048 GFLOP/s, "
        "measured in each contender's process before training. x_ columns: this row / peer.")
    if "tunelab_unpacked" in results:
        setting += (" 'tunelab, packing off' (opt-in): the same with packing=False: length-grouped batches of 8 "
                    "examples, right-padded with an attention mask.")
    if "trl_packed_nogc" in results:
        setting += " 'TRL packed, no grad ckpt' (opt-in): TRL packed with gradient_checkpointing=False."
    return {"setting": setting, **rows}


# ============================================================================================== contender entry point


def _threads() -> int:
    """os.cpu_count(), or TRAIN_BENCH_THREADS (on a machine shared with other work, 2 OpenMP threads on 2 busy
    cores stall on each other: elementwise ops run ~10x slower than with 1)."""
    return int(os.environ.get("TRAIN_BENCH_THREADS") or os.cpu_count() or 1)


def _contender_main(name: str, spec_path: str) -> None:
    _environment()
    import torch

    torch.set_num_threads(_threads())
    _quiet()
    spec = json.loads(Path(spec_path).read_text())
    if spec["bench"] == "sft":
        out = _run_sft_contender(name, spec)
    else:
        import cls_bench  # the classification benchmark's own module; it imports this one for the hooks

        out = cls_bench.run_contender(name, spec)
    out["threads"] = torch.get_num_threads()
    print(RESULT_PREFIX + json.dumps(out, default=str), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contender", help="run one contender (internal: the parent starts these)")
    parser.add_argument("--spec", help="the parent's spec file (with --contender)")
    parser.add_argument("--out", choices=["json"], default="json", help="result format (a JSON line on stdout)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness")
    parser.add_argument("--only", choices=["train_sft", "train_classification"], action="append")
    args = parser.parse_args()
    if args.contender:
        _contender_main(args.contender, args.spec)
        return
    for name in args.only or ["train_sft", "train_classification"]:
        if name == "train_sft":
            result = bench_sft(args.quick)
        else:
            import cls_bench

            result = cls_bench.bench_classification(args.quick)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
