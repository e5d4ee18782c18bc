"""Serving speed: the real `tunelab serve` on smollm2-135m, driven by 1, 8 and 32 concurrent OpenAI clients, against
a plain `transformers` generate loop answering one request at a time, in the same run.

The server runs as a subprocess in a temporary workspace (reusing the converted SmolLM2 folder when one exists, so
the one-time GGUF conversion is never timed), with a key made by `govern.keys.create_key`. Each client sends chat
completions one after another from a shared pool of requests until the level's total is done. The baseline runs
first, in this process, while no server is up. The issue's target (>= 4x the baseline's tokens/s at 32 clients,
zero errors, p99 under 3x p50) is only reported, never asserted.
"""

from __future__ import annotations

import asyncio
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "examples" / "customer_support" / "customer_support.csv"
MODEL, MAX_BATCH = "smollm2-135m", 32
LEVELS, QUICK_LEVELS = {1: 32, 8: 64, 32: 128}, {1: 4, 4: 8}  # clients -> requests
BASELINE, QUICK_BASELINE = 16, 2  # requests
TARGET_X, TARGET_TAIL, TARGET_CLIENTS = 4.0, 3.0, 32


def _questions(n: int) -> list[str]:
    with SUPPORT.open(encoding="utf-8") as f:
        return [row["instruction"] for _, row in zip(range(n), csv.DictReader(f), strict=False)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def _row(requests: int, seconds: float, tokens: int, latencies: list[float], errors: int) -> dict[str, Any]:
    p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
    return {"requests": requests, "seconds": round(seconds, 2), "requests_per_s": round(requests / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "p50_latency_s": round(p50, 3),
            "p99_latency_s": round(p99, 3), "p99_over_p50": round(p99 / p50, 2), "errors": errors}


@contextmanager
def _workspace() -> Iterator[Path]:
    """A temporary TUNELAB_HOME in os.environ (for this process and the server), sharing the default workspace's
    converted base models when there are any."""
    from tunelab.workspace import Workspace

    saved = dict(os.environ)
    shared = [c for c in (Workspace.from_env().model_cache, ROOT / ".tunelab" / "base-models") if c.is_dir()]
    with tempfile.TemporaryDirectory(prefix="tunelab-serve-bench-") as tmp:
        os.environ["TUNELAB_HOME"] = tmp
        os.environ["TUNELAB_MODEL_CACHE"] = str(shared[0] if shared else Path(tmp) / "base-models")
        try:
            yield Path(tmp)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _baseline(path: str, questions: list[str], new_tokens: int, device: str) -> dict[str, Any]:
    """A plain transformers loop: chat template, greedy `generate`, one request at a time."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().to(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    stop = sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")} - {None})

    def answer(question: str, limit: int) -> int:
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=limit, do_sample=False, eos_token_id=stop,
                                 pad_token_id=tokenizer.eos_token_id)
        return out.shape[1] - inputs["input_ids"].shape[1]

    answer(questions[0], 4)  # warm-up
    latencies, tokens = [], 0
    for question in questions:
        started = time.perf_counter()
        tokens += answer(question, new_tokens)
        latencies.append(time.perf_counter() - started)
    return _row(len(questions), sum(latencies), tokens, latencies, 0)


def _start_server(port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "tunelab.cli", "serve", "--model", MODEL, "--host", "127.0.0.1",
               "--port", str(port), "--max-batch", str(MAX_BATCH)]
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"tunelab serve did not become healthy (exit code {proc.poll()}); its log ends:\n{tail}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _drive(url: str, key: str, clients: int, total: int, questions: list[str], new_tokens: int) -> dict:
    """`clients` coroutines, each sending one chat completion after another, until `total` are done."""
    from openai import AsyncOpenAI

    pending = iter(range(total))  # shared: a client takes the next request once its previous one is answered
    latencies: list[float] = []
    counts = {"tokens": 0, "errors": 0}

    async def client_loop(client: AsyncOpenAI) -> None:
        for i in pending:
            started = time.perf_counter()
            try:
                reply = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": questions[i % len(questions)]}],
                    temperature=0, max_tokens=new_tokens)
                counts["tokens"] += reply.usage.completion_tokens
                latencies.append(time.perf_counter() - started)
            except Exception:  # any failure (a non-200 raises in the openai client) is an error
                counts["errors"] += 1

    async with AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return _row(total, seconds, counts["tokens"], latencies, counts["errors"])


def _summary(clients: int, row: dict[str, Any]) -> str:
    line = (f"  serve {clients:>2} client(s): {row['requests_per_s']} req/s, {row['tokens_per_s']} tok/s "
            f"(x{row['x_tokens_per_s_vs_baseline']} baseline), p50 {row['p50_latency_s']} s, p99 "
            f"{row['p99_latency_s']} s (x{row['p99_over_p50']}), {row['errors']} error(s)")
    if clients == TARGET_CLIENTS:
        met = (row["x_tokens_per_s_vs_baseline"] >= TARGET_X and row["errors"] == 0
               and row["p99_over_p50"] < TARGET_TAIL)
        line += (f"; target (>= {TARGET_X:g}x baseline tok/s, 0 errors, p99 < {TARGET_TAIL:g}x p50): "
                 f"{'met' if met else 'not met'}")
    return line


def _serve_levels(home: Path, levels: dict[int, int], questions: list[str], new_tokens: int) -> dict[str, dict]:
    from tunelab.govern.keys import create_key
    from tunelab.store import open_store

    _, key = create_key(open_store(), "serve-bench")
    port = _free_port()
    url, log = f"http://127.0.0.1:{port}", home / "serve.log"
    proc = _start_server(port, log)
    try:
        _wait_healthy(proc, url, log)
        asyncio.run(_drive(url, key, 2, 2, questions, new_tokens))  # warm-up
        return {f"clients_{clients}": asyncio.run(_drive(url, key, clients, total, questions, new_tokens))
                for clients, total in levels.items()}
    finally:
        _stop(proc)


def bench(quick: bool = False) -> dict[str, Any]:
    import torch

    from tunelab.models import resolve_base_model

    levels = QUICK_LEVELS if quick else LEVELS
    new_tokens = 8 if quick else 64
    questions = _questions(max(levels.values()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    server_dtype = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    with _workspace() as home:
        path = resolve_base_model(MODEL).path  # converts from GGUF here, untimed, if no workspace has it yet
        baseline = _baseline(path, questions[:QUICK_BASELINE if quick else BASELINE], new_tokens, device)
        print(f"  serve baseline (transformers, 1 at a time): {baseline['tokens_per_s']} tok/s, p50 "
              f"{baseline['p50_latency_s']} s, p99 {baseline['p99_latency_s']} s", flush=True)
        rows = _serve_levels(home, levels, questions, new_tokens)
    for name, row in rows.items():
        row["x_tokens_per_s_vs_baseline"] = round(row["tokens_per_s"] / baseline["tokens_per_s"], 2)
        print(_summary(int(name.split("_")[1]), row), flush=True)
    counts = ", ".join(f"{total} requests at {clients} client(s)" for clients, total in levels.items())
    setting = (f"SmolLM2-135M-Instruct ({MODEL}) on {device}, {torch.get_num_threads()} torch threads. Server: the "
               f"real `tunelab serve` subprocess on 127.0.0.1 ({server_dtype}, --max-batch {MAX_BATCH}, default "
               f"batch wait), driven from this process by the openai AsyncOpenAI client (max_retries=0) with "
               f"{counts}; each client sends chat completions one after another (customer-support questions, "
               f"temperature 0, max_tokens {new_tokens}), after 2 warm-up requests. tokens_per_s counts "
               f"usage.completion_tokens over the level's wall time; latency is per request; errors are exceptions "
               f"or non-200 answers. Baseline: plain transformers AutoModelForCausalLM (fp32, same converted "
               f"folder) answering {baseline['requests']} of the same questions one at a time in-process (chat "
               f"template, greedy generate, same max_new_tokens, stop on eos/<|im_end|>), after 1 warm-up, with no "
               f"server running. x_tokens_per_s_vs_baseline: a level's tokens/s over the baseline's.")
    return {"setting": setting, "baseline": baseline, **rows}
