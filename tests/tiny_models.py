"""Tiny local models and tokenizers for the training tests: built from scratch, no model hub.

`tiny_tokenizer`        byte-level BPE (GPT-2/SmolLM2 style) with `<|endoftext|>` (eos, pad), `<|im_start|>`,
                        `<|im_end|>` and SmolLM2's ChatML chat template (default system prompt included).
`tiny_tokenizer_no_template`  the same tokenizer without a chat template (the fallback path).
`make_tiny_tokenizer`   the builder: make_tiny_tokenizer(chat_template=...) -> a fresh tokenizer to modify.
`tiny_corpus`           corpus(n, seed) -> deterministic pseudo-sentences.
`tiny_causal_lm`        folder with a 2-layer random `LlamaForCausalLM` + `tiny_tokenizer`.
`tiny_encoder`          folder with a 2-layer random `BertModel` + a WordPiece tokenizer, for sequence classification.
"""

from __future__ import annotations

import random

import pytest

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# SmolLM2-Instruct's template: a default system prompt when the conversation has none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_VOCABULARY = ("order refund cancel account password shipping delivery invoice payment card address help please "
          "thanks hello customer support issue problem change update track package return item price discount "
          "subscription email phone number today tomorrow week month the a an to of and for with my your is are "
          "can you me i we it this that what when how why where not do does will would could should")
_WORDS = _VOCABULARY.split()


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences, with some punctuation, digits and newlines."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        sentence = " ".join(words).capitalize() + rng.choice([".", "?", "!", ":\n- item", f" #{i}."])
        out.append(sentence)
    return out


def _bpe(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def make_tokenizer(chat_template: str | None = CHATML_TEMPLATE):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_bpe(), eos_token="<|endoftext|>",
                                        pad_token="<|endoftext|>", unk_token=None)
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="session")
def make_tiny_tokenizer():
    """The builder itself, for tests that need a variant: make_tiny_tokenizer(chat_template) -> a fresh tokenizer."""
    return make_tokenizer


@pytest.fixture(scope="session")
def tiny_corpus():
    """corpus(n, seed) -> n deterministic pseudo-sentences (the tokenizers' training text)."""
    return corpus


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def tiny_tokenizer_no_template():
    return make_tokenizer(None)


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory, tiny_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tiny_tokenizer.eos_token_id, pad_token_id=tiny_tokenizer.pad_token_id,
                         bos_token_id=None)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-causal-lm")
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


def _wordpiece():
    """A WordPiece tokenizer whose vocabulary is written out, not trained: the tokenizers WordPiece trainer breaks
    ties in a random order, so a trained vocabulary (and every model fitted on it) differed from run to run."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for sentence in corpus() for c in sentence.lower() if not c.isspace()})
    tokens = specials + chars + [f"##{c}" for c in chars] + sorted(set(_WORDS) - set(chars))
    tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=_wordpiece(), unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def prepared(store, tmp_path):
    """prepared(rows, name) -> a prepared dataset version (no PII step, exact dedup, default split)."""
    import json

    from tunelab.data import import_data, prepare
    from tunelab.data.prep_config import PrepConfig

    quick = PrepConfig.model_validate({"pii": {"enabled": False}, "dedup": {"near": False},
                                       "leakage": {"near": False}})

    def make(rows: list[dict], name: str):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return prepare(store, import_data(store, [str(path)], name=name).version.id, quick)

    return make


@pytest.fixture
def greetings(prepared) -> str:
    """A prepared instruction dataset with one fixed answer: an SFT task a tiny model learns in a few steps."""
    from toydata import INTENT_WORDS

    rng = random.Random(1)
    rows = [{"instruction": f"Greet customer number {i} {rng.choice(INTENT_WORDS)}", "input": "",
             "output": "Hello and thank you for contacting support."} for i in range(80)]
    return prepared(rows, "greetings").id
