"""Classification benchmark: tunelab's default recipe vs transformers.Trainer at its best with the same budget, on
SMS spam (LoRA), HWU64 and SNIPS (full fine-tuning; read from ../shared/data, skipped when it is absent).

Why three datasets: a default tuned on one dataset may only hold on that one (issue 20); HWU64 (64 intents) and
SNIPS (7 intents) were never used to pick a default. Why "at its best": a Trainer left at its own defaults (no
evaluation, the last checkpoint, random batches) is a straw man (issue 17), so it gets what a Trainer user would
switch on: length-grouped batches, evaluation each epoch and the best checkpoint restored.

The contenders run in their own processes through train_bench.py (`--contender`), which also holds the timing
hooks. Quality is one function for both: each contender's saved model loaded fresh, scored on the official test
split. TRAIN_BENCH_DATASETS=sms-spam,snips picks datasets (default: all three).
"""

from __future__ import annotations

import gc
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import train_bench as tb

CLS_BASE = "minilm-l6"
CLS_QUICK_STEPS = 5
CLS_QUICK_EVAL_ROWS = 300  # quick mode: validation and test rows scored, so the check stays fast
CLS_CONTENDERS = ("tunelab", "hf_trainer")
SHARED = tb.ROOT.parent / "shared" / "data"
SMS = tb.ROOT / "examples" / "sms_spam"
# name -> (import arguments, prep config file or None for the default PrepConfig, method of the four-line config)
DATASETS: dict[str, tuple[dict[str, Any], Path | None, str]] = {
    "sms-spam": ({"paths": [str(SMS / "SMSSpamCollection")], "mapping": {"SMS": "text", "Label": "label"}},
                 SMS / "prep.yaml", "lora"),
    "hwu64": ({"paths": [f"train={SHARED / 'hwu64' / 'train.csv'}", f"test={SHARED / 'hwu64' / 'test.csv'}"]},
              None, "full"),
    "snips": ({"paths": [f"train={SHARED / 'snips' / 'train.csv'}", f"test={SHARED / 'snips' / 'test.csv'}"]},
              None, "full"),
}


# ============================================================================================== the shared measure


def test_quality(base_path: str, saved: str, method: str, texts: list[str], labels: list[str],
                 label2id: dict[str, int], max_length: int) -> dict[str, float]:
    """Accuracy and macro F1 on `texts`, the one measure for both contenders: the saved model loaded fresh from
    disk (LoRA: base encoder + the adapter with its classifier head; full: the saved model folder)."""
    import torch
    from sklearn.metrics import f1_score
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = _load_saved(base_path, saved, method, label2id).eval()
    predicted: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start:start + 64], truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt")
            predicted += model(**batch).logits.argmax(-1).tolist()
    truth = [label2id[y] for y in labels]
    right = sum(p == t for p, t in zip(predicted, truth, strict=True))
    return {"test_accuracy": right / len(truth), "test_f1_macro": float(f1_score(truth, predicted, average="macro")),
            "test_examples": len(truth)}


def _load_saved(base_path: str, saved: str, method: str, label2id: dict[str, int]) -> Any:
    """A contender's saved classifier in fp32; the label ids are checked against the benchmark's own."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if method == "full":
        model = AutoModelForSequenceClassification.from_pretrained(saved, dtype=torch.float32)
        if {str(k): v for k, v in model.config.label2id.items()} != label2id:
            raise RuntimeError(f"{saved}: label ids differ from the benchmark's")
        return model
    from peft import PeftModel

    config = AutoConfig.from_pretrained(base_path, num_labels=len(label2id), label2id=label2id,
                                        id2label={i: name for name, i in label2id.items()})
    model = AutoModelForSequenceClassification.from_pretrained(base_path, config=config, dtype=torch.float32)
    return PeftModel.from_pretrained(model, saved)


# ===================================================================================================== contenders


def _cls_tunelab(spec: dict[str, Any]) -> dict[str, Any]:
    """tunelab's four-line config (dataset, base model, task, method): every other value is its default."""
    config = {"dataset": spec["dataset_id"], "base_model": CLS_BASE, "task": "classification",
              "method": spec["method"], "precision": "fp32"}
    if spec["quick"]:
        config.update(max_steps=CLS_QUICK_STEPS, eval_examples=CLS_QUICK_EVAL_ROWS)
    return tb._tunelab_train(spec["home"], config)


def _cls_trainer(spec: dict[str, Any]) -> dict[str, Any]:
    """transformers.Trainer with tunelab's resolved recipe plus what a Trainer user would switch on: batches grouped
    by length, evaluation and a checkpoint each epoch, the best checkpoint (by validation accuracy) restored."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    recipe = spec["recipe"]
    set_seed(recipe["seed"])
    model, tokenizer, targets = _trainer_model(spec)
    train, validation = (_tokenized(spec, split, tokenizer) for split in ("train", "validation"))
    extra = {"max_steps": CLS_QUICK_STEPS} if spec["quick"] else {}
    args = TrainingArguments(
        output_dir=str(Path(spec["workdir"]) / "hf-trainer"), learning_rate=recipe["learning_rate"],
        per_device_train_batch_size=recipe["batch_size"], per_device_eval_batch_size=64,
        num_train_epochs=recipe["epochs"], warmup_steps=recipe["warmup_ratio"],
        lr_scheduler_type=recipe["lr_scheduler"], weight_decay=recipe["weight_decay"],
        max_grad_norm=recipe["max_grad_norm"], seed=recipe["seed"], train_sampling_strategy="group_by_length",
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="accuracy",
        save_total_limit=2, report_to="none", disable_tqdm=True, **extra)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=_accuracy,
                      optimizers=(_head_rate_adamw(model, recipe), None))
    timing = tb._timed_trainer_train(trainer)
    saved = Path(spec["workdir"]) / "hf-trainer-model"
    out = {**timing, "steps": trainer.state.global_step, "examples": timing["rows"],
           "own_tokens": timing["real_tokens"], **tb._param_counts(model), "lora_layers": tb._lora_layers(model),
           "adapter": str(saved), "label2id": spec["label2id"], "target_modules": targets, "optim": str(args.optim),
           "best_checkpoint": trainer.state.best_model_checkpoint, "peak_rss_mib": tb.peak_rss_mib()}
    trainer.save_model(str(saved))  # the best checkpoint, restored by load_best_model_at_end
    return out


def _trainer_model(spec: dict[str, Any]) -> tuple[Any, Any, list[str] | None]:
    """The encoder with a new head: with LoRA on the module names tunelab's all-linear resolves to (head trained in
    full), or every weight trainable for full fine-tuning."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    label2id, recipe = spec["label2id"], spec["recipe"]
    config = AutoConfig.from_pretrained(spec["base_path"], num_labels=len(label2id), label2id=label2id,
                                        id2label={i: name for name, i in label2id.items()})
    model = AutoModelForSequenceClassification.from_pretrained(spec["base_path"], config=config, dtype=torch.float32)
    if spec["method"] == "full":
        return model, AutoTokenizer.from_pretrained(spec["base_path"]), None
    from peft import LoraConfig, get_peft_model

    from tunelab.train.lora import default_target_modules

    targets = default_target_modules(model)
    lora = LoraConfig(r=recipe["lora"]["r"], lora_alpha=recipe["lora"]["alpha"], lora_dropout=recipe["lora"]["dropout"],
                      target_modules=targets, modules_to_save=["classifier"], task_type="SEQ_CLS", bias="none")
    return get_peft_model(model, lora), AutoTokenizer.from_pretrained(spec["base_path"]), targets


def _tokenized(spec: dict[str, Any], split: str, tokenizer: Any) -> Any:
    """One prepared split as a tokenized datasets.Dataset; quick mode caps validation so evaluation stays short."""
    from datasets import Dataset

    rows = _split_rows(spec, split)
    dataset = Dataset.from_dict({"text": rows["text"], "label": [spec["label2id"][y] for y in rows["label"]]})
    return dataset.map(lambda b: tokenizer(b["text"], truncation=True, max_length=spec["recipe"]["max_seq_length"]),
                       batched=True, remove_columns=["text"])


def _split_rows(spec: dict[str, Any], split: str) -> dict[str, list[Any]]:
    """Text and label of a prepared split; in quick mode the evaluation splits are a seeded sample."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(spec["version_path"]) / f"{split}.parquet", columns=["text", "label"])
    if spec["quick"] and split != "train" and table.num_rows > CLS_QUICK_EVAL_ROWS:
        table = table.take(sorted(random.Random(0).sample(range(table.num_rows), CLS_QUICK_EVAL_ROWS)))
    return table.to_pydict()


def _accuracy(prediction: Any) -> dict[str, float]:
    """compute_metrics for the Trainer's per-epoch evaluation (metric_for_best_model="accuracy")."""
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def _head_rate_adamw(model: Any, recipe: dict[str, Any]) -> Any:
    """AdamW with the classifier head at tunelab's head learning rate, so both contenders train the same recipe;
    the Trainer builds its linear warmup schedule around it."""
    import torch

    from tunelab.train.setup import head_parameters

    heads = head_parameters(model)  # the same parameters tunelab's optimizer gives the head rate
    head = [p for p in model.parameters() if p.requires_grad and id(p) in heads]
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in heads]
    return torch.optim.AdamW([{"params": body, "lr": recipe["learning_rate"]},
                              {"params": head, "lr": recipe["head_learning_rate"] or recipe["learning_rate"]}],
                             lr=recipe["learning_rate"], weight_decay=recipe["weight_decay"])


def run_contender(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One contender in its own process: train, then the shared test measure on what it saved."""
    out = (_cls_tunelab if name == "tunelab" else _cls_trainer)(spec)
    out.setdefault("peak_rss_mib", tb.peak_rss_mib())  # read before the test model is loaded
    if out["label2id"] != spec["label2id"]:
        raise RuntimeError(f"label ids differ: {out['label2id']} vs {spec['label2id']}")
    gc.collect()
    test = _split_rows(spec, "test")
    out.update(test_quality(spec["base_path"], out["adapter"], spec["method"], test["text"], test["label"],
                            spec["label2id"], spec["recipe"]["max_seq_length"]))
    out["examples_per_s"] = out["examples"] / out["train_s"]
    out["epochs"] = out["examples"] / spec["splits"]["train"]
    return out


# ============================================================================================= parent: run + report


def chosen_datasets() -> list[str]:
    """TRAIN_BENCH_DATASETS (comma-separated), else all; the shared-data ones are skipped, with a message, when
    ../shared/data is not there."""
    names = [n for n in os.environ.get("TRAIN_BENCH_DATASETS", "").replace(",", " ").split() if n] or list(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise ValueError(f"TRAIN_BENCH_DATASETS: unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    kept = []
    for name in names:
        missing = [p.split("=", 1)[-1] for p in DATASETS[name][0]["paths"] if not Path(p.split("=", 1)[-1]).exists()]
        if missing:
            print(f"  classification: skipping {name}: {', '.join(missing)} not found", flush=True)
        else:
            kept.append(name)
    return kept


def bench_classification(quick: bool = False) -> dict[str, Any]:
    """Every chosen dataset, both contenders each; one entry per dataset and contender ("snips/tunelab")."""
    tb._environment()
    tb._quiet()
    from tunelab.models import resolve_base_model

    base = resolve_base_model(CLS_BASE)
    rows: dict[str, dict[str, Any]] = {}
    described = []
    for name in chosen_datasets():
        with tempfile.TemporaryDirectory(prefix=f"train-bench-cls-{name}-") as tmp:
            spec = _prepare(name, Path(tmp), base.path, quick)
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec))
            results = {c: tb._run_contender("cls", c, spec_path) for c in CLS_CONTENDERS}
        rows.update(_report_dataset(name, results))
        described.append(_describe(name, spec, results["tunelab"]))
    return {"setting": _setting(described, quick), **rows}


def _prepare(name: str, work: Path, base_path: str, quick: bool) -> dict[str, Any]:
    """tunelab data import (official splits kept) + prepare, and the recipe tunelab's default would train with."""
    import yaml

    from tunelab.data import import_data, prepare
    from tunelab.data.prep_config import PrepConfig
    from tunelab.data.versions import read_split
    from tunelab.train.config import TrainConfig
    from tunelab.train.setup import planned_config

    source, prep_file, method = DATASETS[name]
    store = tb._store(work / "home")
    raw = import_data(store, source["paths"], name=name, mapping=source.get("mapping")).version
    prep = PrepConfig.model_validate(yaml.safe_load(prep_file.read_text())) if prep_file else PrepConfig()
    version = prepare(store, raw.id, prep)
    recipe = planned_config(store, TrainConfig(dataset=version.id, base_model=CLS_BASE, task="classification",
                                               method=method)).model_dump(mode="json")
    labels = sorted(set(read_split(version, "train").column("label").to_pylist()))
    return {"bench": "cls", "quick": quick, "workdir": str(work), "home": str(work / "home"), "method": method,
            "dataset_id": version.id, "base_path": base_path, "recipe": recipe, "version_path": str(version.path),
            "label2id": {label: i for i, label in enumerate(labels)},
            "splits": {s: read_split(version, s).num_rows for s in version.splits}}


def _report_dataset(name: str, results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The table rows of one dataset (the ratio columns on tunelab's row), and a line per contender."""
    ours, peer = results["tunelab"], results["hf_trainer"]
    rows = {}
    for contender, r in results.items():
        rows[f"{name}/{contender}"] = {
            "test_accuracy": round(r["test_accuracy"], 4), "test_f1_macro": round(r["test_f1_macro"], 4),
            "minutes": round(r["process_s"] / 60, 2), "train_s": round(r["train_s"], 1), "steps": r["steps"],
            "epochs": round(r["epochs"], 2), "examples_per_s": round(r["examples_per_s"], 1),
            "tokens_per_s": round(r["own_tokens"] / r["train_s"]), "peak_rss_mib": round(r["peak_rss_mib"]),
            "eval_s": round(r["eval_s"], 1), "evals": r["evals"], "checkpoint_s": round(r["checkpoint_s"], 1),
            "padded_tokens": r["padded_tokens"], "step_s_median": tb._round(r["step_s_median"], 3),
            "test_examples": r["test_examples"]}
        print(f"  classification {name} {contender}: test accuracy {r['test_accuracy']:.4f}, macro F1 "
              f"{r['test_f1_macro']:.4f}, {r['steps']} steps ({r['epochs']:.2f} epochs) in {r['train_s']:.1f} s + "
              f"{r['eval_s']:.1f} s eval, {r['examples_per_s']:,.1f} examples/s, median step "
              f"{r['step_s_median'] or 0:.3f} s, process {r['process_s'] / 60:.1f} min", flush=True)
    rows[f"{name}/tunelab"].update(
        x_examples_per_s=tb._ratio(ours["examples_per_s"], peer["examples_per_s"]),
        x_minutes=tb._ratio(ours["process_s"], peer["process_s"]),
        delta_accuracy=round(ours["test_accuracy"] - peer["test_accuracy"], 4), best_step=ours["best_step"])
    if ours["trainable_params"] != peer["trainable_params"]:
        print(f"  note: {name}: trainable params differ: tunelab {ours['trainable_params']:,}, Trainer "
              f"{peer['trainable_params']:,}", flush=True)
    return rows


def _describe(name: str, spec: dict[str, Any], ours: dict[str, Any]) -> str:
    """One dataset's part of the setting: its rows and the resolved recipe both contenders trained with."""
    recipe = spec["recipe"]
    method = (f"LoRA r={recipe['lora']['r']}, alpha={recipe['lora']['alpha']}, dropout {recipe['lora']['dropout']} "
              "on all linear layers + trained head" if spec["method"] == "lora" else "full fine-tuning")
    prep = "examples/sms_spam/prep.yaml" if DATASETS[name][1] else "the default PrepConfig (official test kept)"
    return (f"{name} (prepared with {prep}; rows {spec['splits']}): {method} ({ours['trainable_params']:,} "
            f"trainable params), lr {recipe['learning_rate']} (head {recipe['head_learning_rate']}), "
            f"{recipe['epochs']:g} epochs, batch {recipe['batch_size']}, {recipe['warmup_ratio']:.0%} warmup, "
            f"{recipe['lr_scheduler']} decay, weight decay {recipe['weight_decay']}, clip {recipe['max_grad_norm']}, "
            f"max length {recipe['max_seq_length']}, seed {recipe['seed']}")


def _setting(described: list[str], quick: bool) -> str:
    budget = f"{CLS_QUICK_STEPS} steps per contender (quick)" if quick else "the recipe's epochs"
    return (
        "all-MiniLM-L6-v2 + classifier head; per dataset, tunelab's default recipe (the resolved config of the "
        "four-line train config: dataset, base_model minilm-l6, task classification, method lora for sms-spam, "
        "full for hwu64 and snips) is given to both contenders: " + "; ".join(described) + f". Budget: {budget}; "
        f"fp32, {tb._threads()} torch threads. tunelab: recipe.train with every default (length-grouped batches, "
        "validation 4 times per epoch, the checkpoint with the best validation macro F1 restored, a checkpoint at "
        "each evaluation). transformers.Trainer at its best with the same budget: the same values, AdamW with the "
        "same two learning rates (body, head), DataCollatorWithPadding, train_sampling_strategy='group_by_length' "
        "(transformers 5's group_by_length=True), eval_strategy='epoch' on the same validation split, "
        "save_strategy='epoch', load_best_model_at_end=True, metric_for_best_model='accuracy' (compute_metrics), "
        "save_total_limit=2, per_device_eval_batch_size=64. test_accuracy, test_f1_macro (sklearn macro): one "
        "function for both, on the official test split (SMS spam: prep.yaml's seeded 10% test split), each "
        "contender's saved model loaded fresh (LoRA: base + adapter; full: the saved model folder)"
        + (f", {CLS_QUICK_EVAL_ROWS} seeded test and validation rows in quick mode" if quick else "") + ". minutes: "
        "the contender's whole process (imports, model load, tokenisation, training, evaluation, test scoring); "
        "train_s: training loop minus in-loop evaluation (eval_s) and checkpoint writes/loads (checkpoint_s); "
        "epochs = examples trained / train rows; examples_per_s = examples trained / train_s; tokens_per_s counts "
        "non-pad tokens. x_ columns on tunelab's row: tunelab / Trainer; delta_accuracy: tunelab - Trainer.")

