"""`tunelab eval` end to end on tiny local models: metrics match the predictions, flags fire, the gate exits."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunelab.data.versions import read_split
from tunelab.evaluate import EvalOptions, evaluate
from tunelab.evaluate.contenders import Decoding
from tunelab.evaluate.judge import JudgeSettings
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train


def test_classifier_against_its_probe_base_with_bias_flag(store, classifier, regional_intents):
    result = evaluate(store, classifier, regional_intents, EvalOptions(group_column="region", resamples=200))
    report = json.loads(Path(result["json"]).read_text())
    tuned = report["metrics"][classifier]
    base_key = next(c["key"] for c in report["contenders"] if c["role"] == "base")
    assert base_key == f"base:{store.get_run(store.get_model(classifier)['run_id'])['base_model']}"
    assert "probe" in next(c["note"] for c in report["contenders"] if c["role"] == "base")

    # the stored metrics are those of the predictions the report lists, recomputed by scikit-learn
    truth = [str(x) for x in read_split(store.get_dataset(regional_intents), "test").column("label").to_pylist()]
    predicted = report["predictions"][classifier]
    assert tuned["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert tuned["f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert tuned["accuracy_ci"][0] <= tuned["accuracy"] <= tuned["accuracy_ci"][1]
    assert report["comparisons"][base_key]["test"]["test"].startswith("exact McNemar")

    # the south rows contradict the majority, so the tuned model fails them: the bias flag names both groups
    bias = report["bias"][classifier]
    assert bias["flagged"] and bias["groups"]["north"]["accuracy"] > bias["groups"]["south"]["accuracy"] + 0.5
    assert any("north" in r and "south" in r for r in bias["reasons"])
    assert any("south" in f for f in result["flags"])
    assert report["explanations"]["items"] and "background" in report["explanations"]["html"]
    assert Path(result["report"]).read_text().count("data:image/png;base64,") >= 5
    assert store.evaluations(classifier)[0]["evaluation_id"] == result["evaluation"]


def test_gate_exit_codes_and_report_command(cli, classifier, regional_intents):
    ok = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "accuracy=-1", "--json",
             "--no-forgetting")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["gate"]["passed"] and set(out["models"]) >= {classifier}
    failed = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "accuracy=0.9", "--json",
                 "--no-forgetting")
    assert failed.returncode == 1 and not json.loads(failed.stdout)["gate"]["passed"]
    bad = cli("eval", classifier, "--dataset", regional_intents, "--min-improvement", "bleu=0.1")
    assert bad.returncode == 2 and "bleu" in bad.stderr and "Traceback" not in bad.stderr
    where = cli("report", classifier, "--json")
    assert where.returncode == 0 and json.loads(where.stdout)["report"] == json.loads(failed.stdout)["report"]


def test_chat_model_against_zero_and_k_shot_base_and_forgetting_flag(store, greetings, tiny_causal_lm):
    cfg = TrainConfig.model_validate({"dataset": greetings, "base_model": str(tiny_causal_lm), "method": "full",
                                      "learning_rate": 3e-3, "epochs": 3, "max_tokens": 128, "seed": 0, "threads": 1})
    model = train(store, cfg)["model"]
    options = EvalOptions(decoding=Decoding(max_new_tokens=12, shots=2), resamples=200)
    result = evaluate(store, model, greetings, options)
    report = json.loads(Path(result["json"]).read_text())
    keys = [c["key"] for c in report["contenders"]]
    assert keys[0].startswith("base:") and keys[1].endswith("+2shot") and keys[2] == model
    tuned, base = report["metrics"][model], report["metrics"][keys[0]]
    assert tuned["token_f1"] > base["token_f1"] and tuned["perplexity"] < base["perplexity"]
    assert "perplexity" not in report["metrics"][keys[1]]  # no reference perplexity for a prompt with shots
    # trained only on one greeting, the model now finds Wikipedia text far less likely than the random base did
    assert report["forgetting"]["metric"] == "perplexity" and report["forgetting"]["flagged"]
    assert report["comparisons"][keys[0]]["test"]["test"] == "paired bootstrap"
    assert len(report["worst"]) == min(10, report["examples"])
    outcomes = {v["against"]: v["outcome"] for v in report["verdicts"]}
    assert set(outcomes) == set(keys[:2]) and set(outcomes.values()) <= {"wins", "loses", "no clear difference"}
    assert all(v["sentence"] in result["flags"] for v in report["verdicts"] if v["outcome"] != "wins")


def test_deleting_the_dataset_deletes_the_reports_that_quote_it(store, classifier, regional_intents):
    from tunelab.data import delete

    result = evaluate(store, classifier, regional_intents, EvalOptions(forgetting=False, explain=0, resamples=50))
    assert Path(result["report"]).exists()
    assert delete(store, regional_intents, force=True)["reports"] == 1
    assert not Path(result["report"]).parent.exists() and store.evaluations(classifier) == []


class _Judge(BaseHTTPRequestHandler):
    """A stand-in for an external judge LLM behind an OpenAI-compatible API: 5 when the answer greets, else 1."""

    keys: ClassVar[list[str]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.keys.append(self.headers.get("Authorization", ""))
        answer = body["messages"][-1]["content"].split("Assistant's answer:\n", 1)[1]
        score = "I cannot tell" if not answer.strip() else ("5" if "Hello" in answer else "Score: 1")
        reply = {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": score}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_llm_judge_scores_every_model_with_the_rubric_and_keeps_no_key(store, greetings, tiny_causal_lm):
    cfg = TrainConfig.model_validate({"dataset": greetings, "base_model": str(tiny_causal_lm), "method": "full",
                                      "learning_rate": 3e-3, "epochs": 3, "max_tokens": 128, "seed": 0, "threads": 1})
    model = train(store, cfg)["model"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = JudgeSettings(f"http://127.0.0.1:{server.server_port}/v1", "judge-1", api_key="secret-judge-key")
        options = EvalOptions(decoding=Decoding(max_new_tokens=12, shots=0), resamples=50, forgetting=False,
                              judge=judge)
        result = evaluate(store, model, greetings, options)
    finally:
        server.shutdown()
    report = json.loads(Path(result["json"]).read_text())
    tuned, base = report["metrics"][model], report["metrics"][next(iter(report["metrics"]))]
    assert tuned["judge_score"] > base["judge_score"] >= 1 and tuned["judge_invalid"] == 0
    assert result["models"][model]["judge_score"] == tuned["judge_score"]
    assert _Judge.keys and all(k == "Bearer secret-judge-key" for k in _Judge.keys)
    assert "secret-judge-key" not in Path(result["json"]).read_text() + Path(result["report"]).read_text()
    assert "Reply with the score alone" in Path(result["report"]).read_text()
