"""Attributions must find the one word a classifier really uses, for plain and LoRA-wrapped models alike.

The tiny random BERT is fine-tuned for 40 steps on a toy task where "refund" alone decides label 1, at a learning
rate low enough not to saturate it (a saturated softmax makes the integrated-gradients path a step that 32 steps
cannot integrate).
A hand-set model would be deterministic too, but only a trained one checks that the methods read a real
transformer's decision; the fixture asserts the model learned the rule so a failure points at the right place.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from tunelab.errors import InputError
from tunelab.evaluate.explain import attribute, render

METHODS = ["integrated_gradients", "occlusion"]
REFUND_TEXTS = ["please help me get a refund for this order", "refund my payment today",
                "where is my package and the refund"]


def _toy_rows(sentences: list[str], n: int, rng: random.Random) -> list[tuple[str, int]]:
    """Corpus sentences without "refund"; label 1 rows get it inserted at a random place."""
    rows = []
    for _ in range(n):
        words = [w for w in rng.choice(sentences).rstrip(".?!").split() if w.lower() != "refund"][:10]
        label = rng.random() < 0.5
        if label:
            words.insert(rng.randint(0, len(words)), "refund")
        rows.append((" ".join(words), int(label)))
    return rows


@pytest.fixture(scope="module")
def refund_classifier(tiny_encoder, tiny_corpus):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=2)
    sentences, rng = tiny_corpus(200), random.Random(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        texts, labels = zip(*_toy_rows(sentences, 32, rng), strict=True)
        loss = model(**tokenizer(list(texts), padding=True, return_tensors="pt"), labels=torch.tensor(labels)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    texts, labels = zip(*_toy_rows(sentences, 64, random.Random(1)), strict=True)
    with torch.no_grad():
        predicted = model(**tokenizer(list(texts), padding=True, return_tensors="pt")).logits.argmax(-1)
    assert (predicted == torch.tensor(labels)).float().mean() >= 0.95, "the toy classifier did not learn the rule"
    return model, tokenizer


@pytest.mark.parametrize("method", METHODS)
def test_the_deciding_word_gets_the_top_attribution(refund_classifier, method):
    model, tokenizer = refund_classifier
    items = attribute(model, tokenizer, REFUND_TEXTS, [1, 1, 1], method=method)

    for text, item in zip(REFUND_TEXTS, items, strict=True):
        top = max(range(len(item["scores"])), key=lambda i: item["scores"][i])
        assert item["tokens"][top] == "refund", (text, list(zip(item["tokens"], item["scores"], strict=True)))
        # A word pushing towards the other class may outweigh it in magnitude (seen on another CPU's numerics);
        # "refund" must still be the strongest push towards label 1, and the scale is max |score| = 1.
        assert item["scores"][top] >= 0.5
        assert max(abs(s) for s in item["scores"]) == pytest.approx(1.0)
        assert "[CLS]" not in item["tokens"] and "[SEP]" not in item["tokens"]
        assert (item["target"], item["method"]) == (1, method)
        assert ("convergence_delta" in item) == (method == "integrated_gradients")


def test_tokens_are_spans_of_the_original_text(refund_classifier):
    model, tokenizer = refund_classifier
    item = attribute(model, tokenizer, ["Wanting a Refund!"], [1], method="occlusion")[0]

    assert tokenizer.tokenize("Wanting")[1].startswith("##")  # split into WordPieces, shown without "##"
    assert "".join(item["tokens"]) == "WantingaRefund!"
    assert [item["text"][s:e] for s, e in item["offsets"]] == item["tokens"]


@pytest.mark.parametrize("method", METHODS)
def test_lora_wrapped_model_gives_the_same_attributions(refund_classifier, method):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = refund_classifier
    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query",
                                                                                                        "value"]))
    plain = attribute(model, tokenizer, REFUND_TEXTS[:1], [1], method=method)[0]
    lora = attribute(wrapped, tokenizer, REFUND_TEXTS[:1], [1], method=method)[0]

    assert lora["tokens"] == plain["tokens"]
    assert lora["scores"] == pytest.approx(plain["scores"], abs=1e-4)  # LoRA starts as a no-op (B = 0)


def test_unknown_method_and_bad_targets_are_input_errors(refund_classifier):
    model, tokenizer = refund_classifier
    with pytest.raises(InputError, match="Unknown attribution method 'shap'") as error:
        attribute(model, tokenizer, ["hello"], [0], method="shap")
    assert error.value.hint == "Use one of: integrated_gradients, occlusion."
    with pytest.raises(InputError, match=r"\[2\] are out of range: the model has 2 labels"):
        attribute(model, tokenizer, ["hello"], [2])


def test_render_escapes_text_shades_tokens_and_shows_captions_and_legend():
    text = "<script>alert(1)</script> refund"
    items = [{"text": text, "tokens": ["<script>", "refund"], "offsets": [[0, 8], [26, 32]], "scores": [-0.5, 1.0],
              "target": 1, "method": "occlusion"}]
    out = render(items, {0: "ham", 1: "spam"}, captions=["true: ham, predicted: spam & <b>eggs</b> (error)"])

    assert "<script>" not in out and "<b>eggs" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.replace('</span>', "")
    assert "true: ham, predicted: spam &amp; &lt;b&gt;eggs&lt;/b&gt; (error)" in out
    assert "toward <b>spam</b>" in out
    assert 'background:rgba(220,0,0,0.40)' in out and 'background:rgba(0,160,0,0.80)' in out
    assert "pushes toward the label" in out  # the legend
    assert "<link" not in out and "<style" not in out


def test_render_of_real_attributions_has_one_figure_per_text(refund_classifier):
    model, tokenizer = refund_classifier
    items = attribute(model, tokenizer, REFUND_TEXTS[:2], [1, 0], method="occlusion")
    out = render(items, model.config.id2label, captions=["first", "second"])

    assert out.count("<figure") == 2 and "first" in out and "second" in out
    with pytest.raises(InputError, match="Got 1 captions for 2 explained texts"):
        render(items, model.config.id2label, captions=["only one"])
