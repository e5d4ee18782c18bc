"""Export: merged folders load in plain transformers, GGUF files read back (through transformers) to the same model."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from toydata import INTENT_WORDS, intent_rows
from tunelab.errors import InputError
from tunelab.export import export_model
from tunelab.train.config import TrainConfig
from tunelab.train.recipe import train
from tunelab.train.service import load_model

PROMPTS = ["Hello, can you help me track my order?", "<|im_start|>user\nRefund please #42<|im_end|>\n",
           "  spaces,\ttabs\nand digits 12345 ... done!", "naïve café — ünïcode ✓"]


def _cfg(**values) -> TrainConfig:
    return TrainConfig.model_validate({"seed": 0, "threads": 1, **values})


@pytest.fixture
def sft_adapter(store, prepared, tiny_causal_lm) -> str:
    """A LoRA adapter trained a few steps on the tiny Llama (large enough a step size to move the weights)."""
    rng = random.Random(1)
    rows = [{"instruction": f"Greet customer number {i} {rng.choice(INTENT_WORDS)}", "input": "",
             "output": "Hello and thank you for contacting support."} for i in range(40)]
    dataset = prepared(rows, "greetings").id
    result = train(store, _cfg(dataset=dataset, base_model=str(tiny_causal_lm), learning_rate=2e-2, max_steps=4,
                               max_tokens=64, lora={"r": 8, "alpha": 16}))
    assert result["state"] == "succeeded"
    return result["model"]


def _full_model(store, folder: Path, model_id: str) -> str:
    """Register an untrained folder as a full-weights SFT model (what a `method: full` run registers)."""
    store.add_model(model_id, model_id, "full", str(folder), None, task="sft", base_model=str(folder))
    return model_id


def _greedy(model, tokenizer, text: str, tokens: int = 12) -> list[int]:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=tokens, do_sample=False, eos_token_id=None,
                             pad_token_id=tokenizer.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def _logits(model, tokenizer, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer(text, return_tensors="pt").input_ids).logits[0]


def test_merged_export_loads_in_plain_transformers_with_the_adapters_output(store, sft_adapter):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_model(store, sft_adapter, "merged")
    out = Path(result["out"])
    assert out == Path(store.get_model(sft_adapter)["path"]).parent / "export-merged"
    assert "model.safetensors" in result["files"] and not (out / "adapter_config.json").exists()
    plain, plain_tokenizer = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    adapter, tokenizer = load_model(store.get_model(sft_adapter))
    base = AutoModelForCausalLM.from_pretrained(store.get_model(sft_adapter)["base_model"]).eval()
    assert not torch.allclose(_logits(base, tokenizer, PROMPTS[0]), _logits(adapter, tokenizer, PROMPTS[0]))
    for text in PROMPTS[:2]:
        assert _greedy(plain, plain_tokenizer, text) == _greedy(adapter, tokenizer, text)
        torch.testing.assert_close(_logits(plain, plain_tokenizer, text), _logits(adapter, tokenizer, text))
    assert store.audit_log(5)[0]["action"] == "models.export"


def _load_gguf(result: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = next(f for f in result["files"] if f.endswith(".gguf"))
    folder = result["out"]
    return (AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(folder, gguf_file=name))


def _assert_same_model(reference, reference_tokenizer, model, tokenizer, atol: float) -> None:
    for text in PROMPTS:
        ids = reference_tokenizer(text).input_ids
        assert tokenizer(text).input_ids == ids, text
        assert tokenizer.decode(ids) == reference_tokenizer.decode(ids) == text
    for text in PROMPTS[:2]:
        torch.testing.assert_close(_logits(model, reference_tokenizer, text),
                                   _logits(reference, reference_tokenizer, text), atol=atol, rtol=0)
        if atol <= 1e-4:  # f16 rounding may flip the near-ties of a random model's argmax
            assert _greedy(model, tokenizer, text) == _greedy(reference, reference_tokenizer, text)


def test_gguf_of_a_trained_adapter_reads_back_as_the_merged_model(store, sft_adapter):
    result = export_model(store, sft_adapter, "gguf")
    assert result["files"] == ["README.md", f"{sft_adapter}-f32.gguf"] and result["bytes"] > 0  # the model card too
    model, tokenizer = _load_gguf(result)
    reference, reference_tokenizer = load_model(store.get_model(sft_adapter))
    _assert_same_model(reference, reference_tokenizer, model, tokenizer, atol=1e-4)
    assert tokenizer.chat_template == reference_tokenizer.chat_template


@pytest.mark.parametrize(("tied", "gguf_type", "atol"), [(False, "f32", 1e-4), (True, "f16", 2e-2)])
def test_gguf_of_a_full_model_tied_or_not(store, tiny_causal_lm, tmp_path, tied, gguf_type, atol):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "full"
    shutil.copytree(tiny_causal_lm, folder)
    # SmolLM2 ties its output layer to the embeddings (GGUF then has no output.weight). Larger weights than the
    # fixture's make attention, and so a wrong q/k permutation, move the logits far beyond the tolerance.
    config = AutoConfig.from_pretrained(folder)
    config.tie_word_embeddings, config.initializer_range = tied, 0.3
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    model_id = _full_model(store, folder, f"m-full{int(tied)}")
    result = export_model(store, model_id, "gguf", tmp_path / "gguf", gguf_type)
    model, tokenizer = _load_gguf(result)
    assert model.config.tie_word_embeddings == tied
    reference = AutoModelForCausalLM.from_pretrained(folder).eval()
    _assert_same_model(reference, AutoTokenizer.from_pretrained(folder), model, tokenizer, atol=atol)


def test_an_encoder_classifier_is_refused_and_exports_merged(store, prepared, tiny_encoder, cli):
    dataset = prepared(intent_rows(40, words=(6, 6)), "intents").id
    result = train(store, _cfg(dataset=dataset, base_model=str(tiny_encoder), method="full", max_steps=2,
                               batch_size=8))
    done = cli("export", result["model"], "--format", "gguf")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (f"GGUF export supports: llama-family causal LMs; {result['model']} is BertForSequenceClassification"
            in done.stderr) and "--format merged" in done.stderr
    done = cli("export", result["model"], "--format", "merged", "--json")
    assert done.returncode == 0, done.stderr
    exported = json.loads(done.stdout)
    assert set(exported) == {"model", "format", "out", "files", "bytes"}
    assert exported["model"] == result["model"] and exported["format"] == "merged"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(exported["files"])
    assert exported["bytes"] == sum((Path(exported["out"]) / f).stat().st_size for f in exported["files"])


def test_export_refuses_a_folder_it_did_not_write_and_unknown_options(store, tiny_causal_lm, tmp_path):
    model_id = _full_model(store, tiny_causal_lm, "m-full")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty and holds no earlier tunelab export"):
        export_model(store, model_id, "merged", busy)
    with pytest.raises(InputError, match="--format 'onnx' is not supported"):
        export_model(store, model_id, "onnx")
    with pytest.raises(InputError, match="--gguf-type 'q4' is not supported"):
        export_model(store, model_id, "gguf", tmp_path / "g", "q4")
    again = tmp_path / "again"
    export_model(store, model_id, "merged", again)
    assert export_model(store, model_id, "merged", again)["out"] == str(again)  # an earlier export is replaced
    assert (busy / "notes.txt").read_text() == "mine"
