"""LoRA targets and heads, the device plan's refusals, and merging an adapter into a plain transformers folder."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
)

from tunelab.errors import InputError, NotFoundError
from tunelab.train import device as device_module
from tunelab.train.device import DevicePlan, describe_device, plan_device, quantization_config
from tunelab.train.lora import apply_lora, default_target_modules, trainable_summary
from tunelab.train.merge import merge_adapter

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LLAMA = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "pad_token_id": 0}
BERT = {"vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64}


def llama(cls=LlamaForCausalLM, **kwargs):
    torch.manual_seed(0)
    return cls(LlamaConfig(**LLAMA, **kwargs))


def bert_classifier(num_labels: int = 3):
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**BERT, num_labels=num_labels))


# --- LoRA targets ---------------------------------------------------------------------------------------------------

def test_default_targets_llama_leave_out_lm_head():
    assert default_target_modules(llama()) == LLAMA_TARGETS
    assert default_target_modules(llama(LlamaForSequenceClassification, num_labels=2)) == LLAMA_TARGETS


def test_default_targets_bert_leave_out_classifier():
    assert default_target_modules(bert_classifier()) == ["query", "key", "value", "dense"]


def test_all_linear_wraps_every_block_linear_and_no_head():
    model = apply_lora(llama(), r=4, alpha=8, dropout=0.0, target_modules="all-linear", task="sft")
    wrapped = {name.split(".lora_A.")[0].split(".")[-1] for name, _ in model.named_parameters() if ".lora_A." in name}
    assert wrapped == set(LLAMA_TARGETS)
    assert not any("lm_head.lora" in name or "embed_tokens.lora" in name for name, _ in model.named_parameters())


def test_unknown_target_lists_the_linear_modules():
    with pytest.raises(InputError) as err:
        apply_lora(llama(), r=4, alpha=8, dropout=0.0, target_modules=["qproj"], task="sft")
    assert str(err.value) == ("Unknown LoRA target(s) qproj. Linear modules in this model: q_proj, k_proj, v_proj, "
                              "o_proj, gate_proj, up_proj, down_proj.\nUse target_modules: all-linear to select all.")


def test_partial_mismatch_fails_too():
    with pytest.raises(InputError, match=r"Unknown LoRA target\(s\) qproj, vproj\. Linear modules in this model: "
                                         r"query, key, value, dense\."):
        apply_lora(bert_classifier(), r=4, alpha=8, dropout=0.0, target_modules=["query", "qproj", "value", "vproj"],
                   task="classification")


def test_head_is_not_a_lora_target():
    with pytest.raises(InputError, match="Unknown LoRA target"):
        apply_lora(llama(), r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "lm_head"], task="sft")


def test_dotted_suffixes_are_accepted():
    model = apply_lora(llama(), r=4, alpha=8, dropout=0.0, target_modules=["self_attn.q_proj", "mlp.down_proj"],
                       task="sft")
    wrapped = {name.split(".lora_A.")[0].split(".")[-1] for name, _ in model.named_parameters() if ".lora_A." in name}
    assert wrapped == {"q_proj", "down_proj"}


# --- heads and counts -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, head", [(bert_classifier, "classifier"),
                                        (lambda: llama(LlamaForSequenceClassification, num_labels=3), "score")])
def test_classification_keeps_head_trainable(make, head, tmp_path):
    model = apply_lora(make(), r=4, alpha=8, dropout=0.1, target_modules="all-linear", task="classification")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any(f"{head}.modules_to_save.default." in name for name in trainable)
    assert all(".lora_" in name or f"{head}.modules_to_save" in name for name in trainable)
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "adapter_model.safetensors", "pt") as saved:
        keys = saved.keys()
    assert any(f"{head}." in key for key in keys)  # the head travels with the adapter
    saved_heads = json.loads((tmp_path / "adapter_config.json").read_text())["modules_to_save"]
    assert head in saved_heads and len(saved_heads) == len(set(saved_heads))


def test_trainable_summary_counts_lora_parameters():
    base = llama()
    total_before = sum(p.numel() for p in base.parameters())
    model = apply_lora(base, r=4, alpha=8, dropout=0.0, target_modules="all-linear", task="sft")
    # per layer, r * (in + out): q 32+32, k 32+16, v 32+16, o 32+32, gate 32+64, up 32+64, down 64+32
    lora = 2 * 4 * (64 + 48 + 48 + 64 + 96 + 96 + 96)
    summary = trainable_summary(model)
    assert summary == {"trainable": lora, "total": total_before + lora,
                       "percent": round(100 * lora / (total_before + lora), 4)}
    assert all(not p.requires_grad for name, p in base.named_parameters() if ".lora_" not in name)


def test_bad_task_and_rank():
    with pytest.raises(InputError, match="unknown task 'dpo'"):
        apply_lora(llama(), r=4, alpha=8, dropout=0.0, target_modules="all-linear", task="dpo")
    with pytest.raises(InputError, match="rank r must be at least 1"):
        apply_lora(llama(), r=0, alpha=8, dropout=0.0, target_modules="all-linear", task="sft")


# --- device plan ----------------------------------------------------------------------------------------------------

@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA GPU without bf16, flash_attn or bitsandbytes (nothing here touches the device itself)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Tesla T4")
    monkeypatch.setattr(device_module, "_importable", lambda package: False)


def test_cpu_auto_is_fp32_sdpa(no_cuda):
    plan = plan_device(method="lora")
    assert (plan.device, plan.dtype, plan.attn_implementation, plan.quantize_4bit) == ("cpu", torch.float32, "sdpa",
                                                                                       False)
    assert quantization_config(plan) is None
    assert plan_device(method="full", precision="fp32", attn_implementation="eager").attn_implementation == "eager"


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "qlora"}, "qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has none.\n"
                          "Use method: lora."),
    ({"method": "lora", "precision": "bf16"}, "precision bf16 needs a CUDA GPU; this machine has none"),
    ({"method": "full", "precision": "fp16"}, "precision fp16 needs a CUDA GPU"),
    ({"method": "lora", "attn_implementation": "flash_attention_2"},
     "attn_implementation flash_attention_2 needs a CUDA GPU and the flash_attn package; this machine has no GPU.\n"
     "Use attn_implementation: sdpa (or auto)."),
])
def test_cpu_refuses_gpu_only_requests(no_cuda, kwargs, message):
    with pytest.raises(InputError) as err:
        plan_device(**kwargs)
    assert str(err.value).startswith(message)


def test_cpu_refusal_names_every_problem(no_cuda):
    with pytest.raises(InputError) as err:
        plan_device(method="qlora", precision="bf16")
    assert "qlora" in err.value.message and "bf16" in err.value.message
    assert err.value.hint == "Use method: lora. Use precision: fp32 (or auto)."


def test_unknown_values_list_the_choices():
    with pytest.raises(InputError, match="unknown precision 'fp8'"):
        plan_device(method="lora", precision="fp8")
    with pytest.raises(InputError, match="use one of: lora, qlora, full"):
        plan_device(method="adapter")


def test_gpu_without_bf16_or_extras(fake_gpu):
    plan = plan_device(method="lora")
    assert (plan.device, plan.dtype, plan.attn_implementation) == ("cuda", torch.float32, "sdpa")
    half = plan_device(method="lora", precision="fp16")
    assert half.dtype == torch.float16 and half.mixed and half.load_dtype("lora") == torch.float16
    assert half.load_dtype("full") == torch.float32  # every weight trains: fp32 master copies under autocast
    assert not plan.mixed and plan.grad_scaler() is None
    with pytest.raises(InputError, match="bf16 is not supported by this GPU"):
        plan_device(method="lora", precision="bf16")
    with pytest.raises(InputError, match="qlora needs the bitsandbytes package"):
        plan_device(method="qlora", precision="fp16")
    with pytest.raises(InputError, match="needs the flash_attn package"):
        plan_device(method="lora", precision="fp16", attn_implementation="flash_attention_2")


def test_gpu_with_bf16_and_flash_attn(fake_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(device_module, "_importable", lambda package: True)
    plan = plan_device(method="qlora")
    assert (plan.dtype, plan.attn_implementation, plan.quantize_4bit) == (torch.bfloat16, "flash_attention_2", True)
    with pytest.raises(InputError, match="flash_attention_2 needs bf16 or fp16"):
        plan_device(method="lora", precision="fp32", attn_implementation="flash_attention_2")


def test_quantization_config_for_qlora():
    pytest.importorskip("bitsandbytes")
    config = quantization_config(DevicePlan("cuda", torch.bfloat16, "sdpa", True, []))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"


def test_describe_device():
    info = describe_device()
    assert info["torch"] == torch.__version__
    assert isinstance(info["cuda_available"], bool) and info["device_name"]
    assert info["cpu_count"] >= 1 and info["torch_threads"] >= 1


# --- merge ----------------------------------------------------------------------------------------------------------

def _perturbed_adapter(model, task: str, **kwargs):
    """LoRA with non-zero B (and, for classification, a changed head), so merging must change the weights."""
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.1, target_modules="all-linear", task=task, **kwargs)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if ".lora_B." in name or ".modules_to_save." in name:
                param.add_(torch.randn_like(param) * 0.1)
    return peft_model.eval()


def _assert_plain_folder(out_dir):
    assert (out_dir / "model.safetensors").exists()
    config = json.loads((out_dir / "config.json").read_text())
    assert not any("peft" in key or "adapter" in key for key in config)
    with safe_open(out_dir / "model.safetensors", "pt") as saved:
        keys = list(saved.keys())
    assert not any("lora_" in key or "base_model.model" in key or "modules_to_save" in key for key in keys)
    assert not list(out_dir.parent.glob(".tmp-merge-*"))


def test_merge_causal_lm(tiny_causal_lm, tmp_path):
    peft_model = _perturbed_adapter(AutoModelForCausalLM.from_pretrained(tiny_causal_lm), "sft")
    ids = torch.tensor([[5, 17, 42, 99, 3, 8]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    tokenizer.model_max_length = 77  # marks the adapter's copy of the tokenizer
    tokenizer.save_pretrained(adapter_dir)

    out_dir = merge_adapter(str(tiny_causal_lm), adapter_dir, tmp_path / "merged", task="sft")
    merge_adapter(str(tiny_causal_lm), adapter_dir, out_dir, task="sft")  # a second merge replaces the first

    merged = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
        plain = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)(input_ids=ids).logits
    assert not torch.allclose(plain, expected, atol=1e-3)  # the adapter did change the model
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert AutoTokenizer.from_pretrained(out_dir).model_max_length == 77
    _assert_plain_folder(out_dir)


@pytest.mark.parametrize("base_fixture", ["tiny_encoder", "tiny_causal_lm"])
def test_merge_classifier(base_fixture, request, tmp_path):
    base_path = str(request.getfixturevalue(base_fixture))
    id2label = {0: "billing", 1: "shipping", 2: "other"}
    base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=3, id2label=id2label,
                                                              label2id={v: k for k, v in id2label.items()})
    peft_model = _perturbed_adapter(base, "classification")
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    batch = tokenizer(["please refund my order", "where is my package today?"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**batch).logits
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)  # no tokenizer here: merge takes the base's

    out_dir = merge_adapter(base_path, adapter_dir, tmp_path / "merged", task="classification", id2label=id2label)

    merged = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
    assert merged.config.id2label == id2label
    assert (out_dir / "tokenizer.json").exists()
    _assert_plain_folder(out_dir)


def test_merge_needs_labels_and_an_adapter(tiny_encoder, tmp_path):
    with pytest.raises(NotFoundError, match="not a PEFT adapter folder"):
        merge_adapter(str(tiny_encoder), tmp_path, tmp_path / "merged", task="classification", num_labels=2)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match="needs the label map"):
        merge_adapter(str(tiny_encoder), tmp_path, tmp_path / "merged", task="classification")
