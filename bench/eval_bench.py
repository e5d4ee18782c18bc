"""Evaluation inference speed: tunelab's batched predictors against `transformers.pipeline` on the same model and data.

Both run in one process on the same loaded model, after a warm-up; the pipeline is measured at its default batch
size (1) and batched, and the ratio is taken against the faster of the two. Greedy generation in both, so their
answers can be compared too (agreement with the unbatched pipeline is reported).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SMS = ROOT / "examples" / "sms_spam" / "SMSSpamCollection"
SUPPORT = ROOT / "examples" / "customer_support" / "customer_support.csv"
CLS_BATCH, GEN_BATCH, MAX_LENGTH = 32, 16, 256


def _texts(n: int) -> list[str]:
    lines = SMS.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t", 1)[1] for line in lines[:n]]


def _questions(n: int) -> list[str]:
    with SUPPORT.open(encoding="utf-8") as f:
        return [row["instruction"] for _, row in zip(range(n), csv.DictReader(f), strict=False)]


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def bench_classification(quick: bool = False) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from tunelab.evaluate.predict import classify
    from tunelab.models import resolve_base_model

    path = resolve_base_model("minilm-l6").path
    texts = _texts(100 if quick else 2000)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    classify(model, tokenizer, texts[:64], batch_size=CLS_BATCH)  # warm-up
    ours, ours_s = _timed(lambda: classify(model, tokenizer, texts, batch_size=CLS_BATCH, max_length=MAX_LENGTH))
    rows = {"tunelab": {"examples_per_s": round(len(texts) / ours_s, 1), "seconds": round(ours_s, 2)}}
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1, top_k=None)
    for name, batch in (("pipeline_batch_1", 1), (f"pipeline_batch_{CLS_BATCH}", CLS_BATCH)):
        classifier(texts[:64], batch_size=batch, truncation=True, max_length=MAX_LENGTH)  # warm-up
        out, seconds = _timed(lambda b=batch: classifier(texts, batch_size=b, truncation=True, max_length=MAX_LENGTH))
        agree = sum(max(o, key=lambda s: s["score"])["label"] == model.config.id2label[int(p.argmax())]
                    for o, p in zip(out, ours, strict=True)) / len(texts)
        rows[name] = {"examples_per_s": round(len(texts) / seconds, 1), "seconds": round(seconds, 2),
                      "same_label_as_tunelab": round(agree, 4)}
    best = max(v["examples_per_s"] for k, v in rows.items() if k.startswith("pipeline"))
    rows["tunelab"]["x_vs_best_pipeline"] = round(rows["tunelab"]["examples_per_s"] / best, 2)
    print(f"  eval classification: tunelab {rows['tunelab']['examples_per_s']:,} examples/s, best pipeline "
          f"{best:,} (x{rows['tunelab']['x_vs_best_pipeline']})", flush=True)
    setting = (f"all-MiniLM-L6-v2 + 2-label head, {len(texts):,} SMS messages, max length {MAX_LENGTH}, fp32, "
               f"{torch.get_num_threads()} threads. tunelab: evaluate.predict.classify (length-sorted batches of "
               f"{CLS_BATCH}, inference_mode). Peer: transformers.pipeline('text-classification', top_k=None) at "
               f"batch 1 (its default) and {CLS_BATCH}; ratio against the faster. One warm-up call each.")
    return {"setting": setting, **rows}


def bench_generation(quick: bool = False) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from tunelab.evaluate.predict import generate
    from tunelab.models import resolve_base_model
    from tunelab.train.data import render_chats

    path = resolve_base_model("smollm2-135m").path
    questions = _questions(4 if quick else 48)
    new_tokens = 8 if quick else 48
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    chats = [[{"role": "user", "content": q}] for q in questions]
    ids = tokenizer(render_chats(tokenizer, chats, generation=True), add_special_tokens=False)["input_ids"]
    generate(model, tokenizer, ids[:2], max_new_tokens=4)  # warm-up
    ours, ours_s = _timed(lambda: generate(model, tokenizer, ids, max_new_tokens=new_tokens, batch_size=GEN_BATCH))
    rows: dict[str, dict[str, Any]] = {"tunelab": {"examples_per_s": round(len(ids) / ours_s, 2),
                                                   "seconds": round(ours_s, 1)}}
    tokenizer.padding_side = "left"
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer, device=-1)
    settings = {"do_sample": False, "max_new_tokens": new_tokens, "return_full_text": False}
    generator(chats[:1], **settings)  # warm-up
    for name, batch in (("pipeline_batch_1", 1), (f"pipeline_batch_{GEN_BATCH}", GEN_BATCH)):
        out, seconds = _timed(lambda b=batch: generator(chats, batch_size=b, **settings))
        answers = [o[0]["generated_text"].strip() for o in out]
        rows[name] = {"examples_per_s": round(len(ids) / seconds, 2), "seconds": round(seconds, 1),
                      "same_answer_as_tunelab": round(sum(a == b for a, b in zip(answers, ours, strict=True))
                                                      / len(ids), 3)}
    best = max(v["examples_per_s"] for k, v in rows.items() if k.startswith("pipeline"))
    rows["tunelab"]["x_vs_pipeline_default"] = round(rows["tunelab"]["examples_per_s"]
                                                     / rows["pipeline_batch_1"]["examples_per_s"], 2)
    rows["tunelab"]["x_vs_best_pipeline"] = round(rows["tunelab"]["examples_per_s"] / best, 2)
    print(f"  eval generation: tunelab {rows['tunelab']['examples_per_s']} answers/s, pipeline default "
          f"{rows['pipeline_batch_1']['examples_per_s']} (x{rows['tunelab']['x_vs_pipeline_default']}), best "
          f"pipeline {best} (x{rows['tunelab']['x_vs_best_pipeline']})", flush=True)
    setting = (f"SmolLM2-135M-Instruct (fp32), {len(ids)} customer-support questions as single-turn chats, greedy, "
               f"{new_tokens} new tokens at most, {torch.get_num_threads()} threads. tunelab: "
               f"evaluate.predict.generate (length-sorted, left-padded batches of {GEN_BATCH}, KV cache, stop on "
               f"eos/<|im_end|>). Peer: transformers.pipeline('text-generation') on the same chats at batch 1 (its "
               f"default) and {GEN_BATCH} (left padding); x_vs_pipeline_default and x_vs_best_pipeline compare "
               "answers/s. same_answer_as_tunelab: identical greedy answers.")
    return {"setting": setting, **rows}
