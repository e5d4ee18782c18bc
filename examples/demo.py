"""`make demo`: the whole path tunelab has so far, on the bundled data, through the real CLI.

Data: import and prepare the SMS spam and customer-support sets. Training: the SMS spam classifier (LoRA on
all-MiniLM-L6-v2, the default recipe) and a short LoRA fine-tune of SmolLM2-135M-Instruct on the support data.
Evaluation: each model against its base on its test split (the chatbot on a seeded sample of its rows, to keep
the demo short), with the HTML reports' paths printed at the end. Serving: an API key, the server on the chatbot
for a few seconds, and one question asked through the real `openai` client.

Each step prints the command it runs, so the demo doubles as a tour of what to type.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
TUNELAB = [sys.executable, "-m", "tunelab.cli"]


def tunelab(*args: str) -> dict:
    print(f"\n$ tunelab {shlex.join(args)}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([*TUNELAB, *args, "--json"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"demo step failed (exit {done.returncode})")
    result = json.loads(done.stdout)
    print(f"  ({time.perf_counter() - started:.1f} s)")
    return result


def report_prepared(version: dict) -> None:
    for step in version["steps"]:
        detail = {k: v for k, v in step.items() if k in (
            "rows_changed", "removed", "clusters", "conflicting_clusters", "entities", "rows_with_pii", "carved",
            "exact", "near", "too_short", "too_long")}
        print(f"  {step['name']:<12} {step['rows_in']:>6,} -> {step['rows_out']:>6,}  {json.dumps(detail)}")
    print(f"  splits: {version['splits']}   card: {version['card']}")


def report_run(run: dict) -> None:
    labels = (f", accuracy {run['best_val_accuracy']:.4f}, macro F1 {run['best_val_f1']:.4f}"
              if run.get("best_val_f1") is not None else "")
    print(f"  run {run['run']}: {run['state']} after {run['step']} steps; best checkpoint at step "
          f"{run['best_step']}: validation loss {run['best_val_loss']:.4f}{labels}")
    print(f"  model {run['model']} in {run['output']}")


def report_eval(result: dict) -> str:
    for model, metrics in result["models"].items():
        print(f"  {model:<28} " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    for verdict in result["verdicts"]:
        print(f"  {'win' if verdict['outcome'] == 'wins' else 'NO WIN'}: {verdict['sentence']}")
    for flag in (f for f in result["flags"] if f not in {v["sentence"] for v in result["verdicts"]}):
        print(f"  flag: {flag}")
    return result["report"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit("the server did not become healthy in time")


def serve_and_ask(model: str) -> None:
    from openai import OpenAI

    key = tunelab("keys", "create", "--name", "demo")["key"]
    port = _free_port()
    # a fresh candidate: a single-user demo has no second person to approve it (docs/governance.md)
    print(f"\n$ tunelab serve --model {model} --port {port} --allow-unapproved", flush=True)
    server = subprocess.Popen([*TUNELAB, "serve", "--model", model, "--port", str(port), "--allow-unapproved"])
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key)
        question = "I want to cancel my order, how do I do that?"
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               max_tokens=64, temperature=0)
        print(f"  openai client -> {model}\n  Q: {question}\n  A: {reply.choices[0].message.content}\n"
              f"  usage: {reply.usage.prompt_tokens} prompt + {reply.usage.completion_tokens} completion tokens")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    sms = tunelab("data", "import", str(HERE / "sms_spam" / "SMSSpamCollection"), "--name", "sms-spam",
                  "--map", "SMS=text", "--map", "Label=label")
    print(f"  {sms['rows']:,} rows as {sms['kind']} ({sms['detected']}), {sms['rejected']} rejected")
    report_prepared(tunelab("data", "prepare", "sms-spam", "--config", str(HERE / "sms_spam" / "prep.yaml")))

    support = tunelab("data", "import", str(HERE / "customer_support" / "customer_support.csv"),
                      "--name", "customer-support", "--map", "response=output")
    print(f"  {support['rows']:,} rows as {support['kind']} ({support['detected']}), {support['rejected']} rejected")
    report_prepared(tunelab("data", "prepare", "customer-support",
                            "--config", str(HERE / "customer_support" / "prep.yaml")))
    listed = tunelab("data", "list")
    print(f"  {len(listed['datasets'])} dataset versions in the workspace")

    classifier = tunelab("train", str(HERE / "sms_spam" / "train.yaml"))
    report_run(classifier)
    chatbot = tunelab("train", str(HERE / "customer_support" / "train.yaml"))
    report_run(chatbot)

    reports = [report_eval(tunelab("eval", classifier["model"], "--dataset", "sms-spam")),
               report_eval(tunelab("eval", chatbot["model"], "--dataset", "customer-support", "--limit", "48",
                                   "--max-new-tokens", "128"))]
    print("\nreports (open in a browser):", *reports, sep="\n  ")
    serve_and_ask(chatbot["model"])


if __name__ == "__main__":
    main()
