"""Training data: loss masks, truncation, the batch plan, packed collation and its equivalence to unpacked batches."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
import torch

from tunelab.errors import InputError, TunelabError
from tunelab.train.data import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    Encoded,
    collate_classification,
    collate_sft,
    count_tokens,
    encode_classification,
    encode_sft,
    label_map,
    plan_batches,
)

CHATS = [
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Hello there"},
     {"role": "assistant", "content": "Hi! How can I help?"},
     {"role": "user", "content": "Refund my order 12345"},
     {"role": "assistant", "content": "Sure, the refund is on its way.\n- item"}],
    [{"role": "user", "content": "Track my package"},
     {"role": "assistant", "content": " It ships  tomorrow!"}],
    [{"role": "user", "content": "Café ünïcode ✓ 日本"},
     {"role": "assistant", "content": "Merci: ✓✓ 日本語"}],
]


def _chat_table(chats):
    return pa.table({"messages": chats})


def _trained_pieces(tokenizer, ids, labels):
    """Decode each run of consecutive trained tokens."""
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(ids, labels, strict=True))
    return [tokenizer.decode([i for i, _ in run])
            for trained, run in itertools.groupby(zip(ids, labels, strict=True), key=lambda p: p[1] != IGNORE_INDEX)
            if trained]


def _assistant_texts(chat):
    return [m["content"] + "<|im_end|>" for m in chat if m["role"] == "assistant"]


def test_chat_loss_is_exactly_the_assistant_messages_and_their_end_token(tiny_tokenizer):
    encoded = encode_sft(_chat_table(CHATS), "chat", tiny_tokenizer, 512)

    assert (encoded.truncated, encoded.dropped) == (0, 0)
    for chat, ids, labels in zip(CHATS, encoded.input_ids, encoded.labels, strict=True):
        assert _trained_pieces(tiny_tokenizer, ids, labels) == _assistant_texts(chat)
        # the ids are exactly the template's rendering (default system prompt included when there is none)
        rendered = tiny_tokenizer.apply_chat_template(chat, tokenize=False)
        assert ids == tiny_tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert "You are a helpful AI assistant" in tiny_tokenizer.decode(encoded.input_ids[1])


def test_mask_survives_trimmed_offsets(make_tiny_tokenizer):
    from tokenizers import processors

    tokenizer = make_tiny_tokenizer()
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    encoded = encode_sft(_chat_table(CHATS), "chat", tokenizer, 512)
    for chat, ids, labels in zip(CHATS, encoded.input_ids, encoded.labels, strict=True):
        assert _trained_pieces(tokenizer, ids, labels) == _assistant_texts(chat)


def test_instruction_rows_become_a_user_turn_and_an_assistant_turn(tiny_tokenizer):
    table = pa.table({"instruction": ["Cancel my order", "Say hello"], "input": ["order 42", None],
                      "output": ["Done, order 42 is cancelled.", "Hello!"]})
    encoded = encode_sft(table, "instruction", tiny_tokenizer, 512)

    first = tiny_tokenizer.decode(encoded.input_ids[0])
    assert "<|im_start|>user\nCancel my order\n\norder 42<|im_end|>" in first
    assert "<|im_start|>user\nSay hello<|im_end|>" in tiny_tokenizer.decode(encoded.input_ids[1])
    pieces = [_trained_pieces(tiny_tokenizer, i, lab) for i, lab in zip(encoded.input_ids, encoded.labels, strict=True)]
    assert pieces == [["Done, order 42 is cancelled.<|im_end|>"], ["Hello!<|im_end|>"]]


def test_completion_trains_on_completion_and_eos_only(tiny_tokenizer):
    table = pa.table({"prompt": ["The order ships", "Refund:"], "completion": [" tomorrow.", " approved"]})
    encoded = encode_sft(table, "completion", tiny_tokenizer, 512)

    eos = tiny_tokenizer.eos_token_id
    for ids, labels, prompt, completion in zip(encoded.input_ids, encoded.labels, table["prompt"].to_pylist(),
                                               table["completion"].to_pylist(), strict=True):
        n_prompt = len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert ids[:n_prompt] == tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]  # no BOS: none added
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == eos
        assert tiny_tokenizer.decode(ids[n_prompt:]) == completion + "<|endoftext|>"


def test_fallback_template_when_the_tokenizer_has_none(tiny_tokenizer_no_template):
    chat = CHATS[1]
    encoded = encode_sft(_chat_table([chat]), "chat", tiny_tokenizer_no_template, 512)

    text = tiny_tokenizer_no_template.decode(encoded.input_ids[0])
    assert text == "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in chat)
    assert "SmolLM" not in text
    assert _trained_pieces(tiny_tokenizer_no_template, encoded.input_ids[0], encoded.labels[0]) == \
        _assistant_texts(chat)
    assert "<|im_start|>" in FALLBACK_CHAT_TEMPLATE and "add_generation_prompt" in FALLBACK_CHAT_TEMPLATE


def test_template_that_rewrites_earlier_turns_is_refused(make_tiny_tokenizer):
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                "{% if loop.last %} (last){% endif %}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer = make_tiny_tokenizer(template)
    with pytest.raises(TunelabError, match="chat template"):
        encode_sft(_chat_table([CHATS[0]]), "chat", tokenizer, 512)


def test_truncation_counts_and_drops_examples_with_nothing_left_to_learn(tiny_tokenizer, tiny_corpus):
    long_question = " ".join(tiny_corpus(30))
    chats = [CHATS[1],
             [{"role": "user", "content": long_question}, {"role": "assistant", "content": "ok"}],  # answer cut off
             [{"role": "user", "content": "hi"}, {"role": "assistant", "content": long_question}]]  # answer cut
    limit = len(encode_sft(_chat_table(chats[:1]), "chat", tiny_tokenizer, 10_000).input_ids[0]) + 5
    encoded = encode_sft(_chat_table(chats), "chat", tiny_tokenizer, limit)

    assert (encoded.truncated, encoded.dropped) == (2, 1)
    assert len(encoded.input_ids) == 2 and all(len(x) <= limit for x in encoded.input_ids)
    assert len(encoded.input_ids[1]) == limit and encoded.labels[1][-1] != IGNORE_INDEX

    table = pa.table({"prompt": [long_question, "short"], "completion": [" end", " end"]})
    encoded = encode_sft(table, "completion", tiny_tokenizer, 32)
    assert (encoded.truncated, encoded.dropped, len(encoded.input_ids)) == (1, 1, 1)
    assert encode_sft(_chat_table([]), "chat", tiny_tokenizer, 32) == Encoded([], [], 0, 0)


def test_encode_sft_refuses_classification(tiny_tokenizer):
    with pytest.raises(InputError):
        encode_sft(pa.table({"text": ["a"], "label": ["b"]}), "classification", tiny_tokenizer, 32)


# ------------------------------------------------------------------------------------------------------------- plan

LENGTHS = np.random.default_rng(1).integers(5, 300, size=1000).tolist()


@pytest.mark.parametrize("packing", [False, True])
def test_plan_is_deterministic_per_epoch_and_covers_every_index_once(packing):
    plan = plan_batches(LENGTHS, batch_size=8, seed=3, epoch=0, packing=packing)

    assert plan == plan_batches(LENGTHS, batch_size=8, seed=3, epoch=0, packing=packing)
    assert plan != plan_batches(LENGTHS, batch_size=8, seed=3, epoch=1, packing=packing)
    assert plan != plan_batches(LENGTHS, batch_size=8, seed=4, epoch=0, packing=packing)
    assert sorted(itertools.chain.from_iterable(plan)) == list(range(len(LENGTHS)))
    if not packing:
        assert all(len(b) <= 8 for b in plan)
        assert max(LENGTHS) == LENGTHS[plan[0][0]]  # the longest batch goes first


def test_packing_respects_max_tokens_and_fills_bins():
    plan = plan_batches(LENGTHS, batch_size=8, seed=0, epoch=0, packing=True, max_tokens=1024)
    loads = [sum(LENGTHS[i] for i in b) for b in plan]
    assert max(loads) <= 1024
    assert len(plan) <= int(np.ceil(sum(LENGTHS) / 1024)) + 2  # first-fit leaves little room unused here

    default = plan_batches(LENGTHS, batch_size=4, seed=0, epoch=0, packing=True)
    assert max(sum(LENGTHS[i] for i in b) for b in default) <= 4 * max(LENGTHS)

    alone = plan_batches([10, 500, 20], batch_size=1, seed=0, epoch=0, packing=True, max_tokens=100)
    assert sorted(map(sorted, alone)) == [[0, 2], [1]]


def test_packed_steps_mix_lengths_like_random_batches():
    """Bins are filled in a random order, not longest first: a step must not hold only long (or only short) rows."""
    plan = plan_batches(LENGTHS, batch_size=8, seed=0, epoch=0, packing=True, max_tokens=1024)
    bin_means = [np.mean([LENGTHS[i] for i in b]) for b in plan[:-1]]  # the last bin may hold the leftovers
    assert np.std(bin_means) < 0.5 * np.std(LENGTHS)


def test_no_shuffle_plan_has_no_randomness():
    a = plan_batches(LENGTHS, batch_size=8, seed=0, epoch=0, packing=False, shuffle=False)
    assert a == plan_batches(LENGTHS, batch_size=8, seed=9, epoch=5, packing=False, shuffle=False)
    assert sorted(itertools.chain.from_iterable(a)) == list(range(len(LENGTHS)))


def test_length_grouping_reduces_padding():
    def padding(plan):
        return sum(len(b) * max(LENGTHS[i] for i in b) - sum(LENGTHS[i] for i in b) for b in plan)

    grouped = plan_batches(LENGTHS, batch_size=8, seed=0, epoch=0, packing=False)
    order = np.random.default_rng(0).permutation(len(LENGTHS)).tolist()
    random = [order[i:i + 8] for i in range(0, len(order), 8)]
    assert padding(grouped) < 0.1 * padding(random)


# ---------------------------------------------------------------------------------------------------------- collate


def test_collate_packed_resets_positions_and_never_targets_across_examples():
    ids = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    labels = [[5, 6, 7], [8, 9], [IGNORE_INDEX, 11, 12, 13]]
    batch = collate_sft(ids, labels, packing=True, pad_id=0)

    assert set(batch) == {"input_ids", "position_ids", "labels", "num_tokens"}
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11, 12, 13]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9, IGNORE_INDEX, 11, 12, 13]]
    # the model's loss shifts labels left: the target of position t is labels[t + 1]
    targets = batch["labels"][0, 1:].tolist()
    for end in (2, 4):  # last token of examples 0 and 1
        assert targets[end] == IGNORE_INDEX
    assert count_tokens(batch) == 9


def test_collate_unpacked_pads_right():
    batch = collate_sft([[1, 2, 3], [4]], [[IGNORE_INDEX, 2, 3], [4]], packing=False, pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [4, IGNORE_INDEX, IGNORE_INDEX]]
    assert count_tokens(batch) == 4


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_examples_one_by_one(tiny_causal_lm, tiny_tokenizer, attn):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm, attn_implementation=attn).eval()
    encoded = encode_sft(_chat_table(CHATS), "chat", tiny_tokenizer, 512)
    ids, labels = encoded.input_ids, encoded.labels
    with torch.no_grad():
        total, count = 0.0, 0
        for x, y in zip(ids, labels, strict=True):
            one = collate_sft([x], [y], packing=False, pad_id=tiny_tokenizer.pad_token_id)
            n = int((one["labels"][0, 1:] != IGNORE_INDEX).sum())
            total += float(model(**one, use_cache=False).loss) * n
            count += n
        packed = collate_sft(ids, labels, packing=True, pad_id=tiny_tokenizer.pad_token_id)
        packed_loss = float(model(**{k: v for k, v in packed.items() if k != "num_tokens"}, use_cache=False).loss)
        rows = collate_sft(ids, labels, packing=True, pad_id=tiny_tokenizer.pad_token_id,
                           row_tokens=max(len(x) for x in ids))
        rows_loss = float(model(**{k: v for k, v in rows.items() if k != "num_tokens"}, use_cache=False).loss)
        padded = collate_sft(ids, labels, packing=False, pad_id=tiny_tokenizer.pad_token_id)
        padded_loss = float(model(**padded, use_cache=False).loss)
    assert rows["input_ids"].shape[0] > 1 and int(rows["num_tokens"]) == sum(len(x) for x in ids)
    assert packed_loss == pytest.approx(total / count, abs=1e-4)
    assert rows_loss == pytest.approx(total / count, abs=1e-4)
    assert padded_loss == pytest.approx(total / count, abs=1e-4)


# ---------------------------------------------------------------------------------------------------- classification


def test_classification_encode_and_collate(tiny_encoder, tiny_corpus):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    table = pa.table({"text": ["Refund my order please", " ".join(tiny_corpus(5))], "label": ["refund", "other"]})
    label2id = label_map([table])
    encoded = encode_classification(table, tokenizer, label2id, 16)

    assert label2id == {"other": 0, "refund": 1}
    assert encoded.labels == [1, 0] and (encoded.truncated, encoded.dropped) == (1, 0)
    assert encoded.input_ids[0] == tokenizer("Refund my order please")["input_ids"]
    assert len(encoded.input_ids[1]) == 16 and encoded.input_ids[1][-1] == tokenizer.sep_token_id
    batch = collate_classification(encoded.input_ids, encoded.labels, pad_id=tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 16)
    assert batch["labels"].tolist() == [1, 0]
    assert count_tokens(batch) == len(encoded.input_ids[0]) + 16

    with pytest.raises(InputError, match="unseen"):
        encode_classification(pa.table({"text": ["x"], "label": ["unseen"]}), tokenizer, label2id, 16)


def test_label_map_is_sorted_and_independent_of_order():
    a = pa.table({"text": ["1", "2", "3"], "label": ["spam", "ham", None]})
    b = pa.table({"text": ["4"], "label": ["eggs"]})
    assert label_map([a, b]) == label_map([b, a]) == {"eggs": 0, "ham": 1, "spam": 2}


def test_loss_on_target_positions_only_equals_the_full_logits_loss(tiny_causal_lm, tiny_tokenizer):
    """The SFT loss runs the output layer only where a target is: same loss and gradients as full logits."""
    from types import SimpleNamespace

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunelab.train.loop import body_and_head, loss_sum

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_causal_lm),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    encoded = encode_sft(_chat_table(CHATS), "chat", tiny_tokenizer, 512)
    batch = collate_sft(encoded.input_ids, encoded.labels, packing=True, pad_id=tiny_tokenizer.pad_token_id,
                        row_tokens=64)
    setup = SimpleNamespace(cfg=SimpleNamespace(task="sft"))
    assert body_and_head(model) is not None

    fast, n, _ = loss_sum(setup, model, batch)
    fast.backward()
    fast_grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "num_tokens")}
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    full = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"][:, 1:].flatten(),
                                             ignore_index=IGNORE_INDEX, reduction="sum")
    full.backward()
    assert n == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert float(fast.detach()) == pytest.approx(float(full.detach()), rel=1e-5)
    for a, p in zip(fast_grads, (p for p in model.parameters() if p.requires_grad), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-5)
