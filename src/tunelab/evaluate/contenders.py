"""The models an evaluation puts side by side, each behind one `predict(EvalSet)` call.

- a registered fine-tuned model (adapter merged in memory, or full weights);
- an encoder base: the frozen base encoder with a logistic-regression probe fitted on the same train split, since a
  bare encoder has no classification head to compare (token classification: a probe on each word's first-piece
  hidden state, predicting its BIO tag);
- a causal base: the base model prompted the same way, zero-shot or with k examples from the train split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tunelab.errors import InputError
from tunelab.evaluate import predict
from tunelab.evaluate.inputs import EvalSet, few_shot, prompt_ids
from tunelab.models import resolve_base_model
from tunelab.store import Store
from tunelab.train import tagging
from tunelab.train.data import encode_sft
from tunelab.train.service import load_model
from tunelab.train.setup import load_tokenizer

PROBE_TRAIN_ROWS = 4000  # enough for a linear probe to converge; keeps the base line cheap on big train splits
PROBE_TRAIN_WORDS = 20000  # the token probe's cap, in words


@dataclass
class Decoding:
    """The generation settings every causal contender shares, so outputs differ only by model."""

    max_new_tokens: int = 128
    batch_size: int = 16
    shots: int = 3  # examples shown to the k-shot base
    max_length: int = 512  # longest input scored, in tokens


@dataclass
class Contender:
    key: str  # unique key in the results (a model id, or base:<name>[+kshot])
    label: str  # what charts and tables call it
    role: str  # tuned | base | compare
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    note: str = ""  # how it was built, shown in the report
    model_id: str | None = None  # registered models only: results are stored against it
    shots: list[tuple[Any, str]] = field(default_factory=list, repr=False)
    probe: Any = field(default=None, repr=False)  # fitted LogisticRegression for an encoder base

    def predict(self, data: EvalSet, labels: list[str], decoding: Decoding) -> dict[str, Any]:
        """classification -> {"proba": [n, len(labels)]}; token classification -> {"entities": [[span, ...], ...]};
        generation -> {"predictions": [...], "nll", "tokens"}."""
        if data.task == "classification":
            return {"proba": self._proba(data.inputs, labels, decoding)}
        if data.task == "token_classification":
            return {"entities": self._entities(data.inputs, decoding)}
        ids = prompt_ids(self.tokenizer, data, self.shots)
        ids = [x[-decoding.max_length:] for x in ids]  # keep the question when shots overflow
        out = {"predictions": predict.generate(self.model, self.tokenizer, ids, max_new_tokens=decoding.max_new_tokens,
                                               batch_size=decoding.batch_size, description=f"generate {self.label}")}
        if not self.shots:  # perplexity of the reference answers, prompted as in training
            encoded = encode_sft(data.table, data.kind, self.tokenizer, decoding.max_length)
            out["nll"], out["tokens"] = predict.token_nll(self.model, encoded.input_ids, encoded.labels,
                                                          pad_id=self.tokenizer.pad_token_id,
                                                          description=f"perplexity {self.label}")
        return out

    def _proba(self, texts: list[str], labels: list[str], decoding: Decoding) -> np.ndarray:
        if self.probe is not None:
            embedded = predict.embed(self.model, self.tokenizer, texts, max_length=decoding.max_length,
                                     description=f"embed {self.label}")
            return _reorder(self.probe.predict_proba(embedded), list(self.probe.classes_), labels)
        proba = predict.classify(self.model, self.tokenizer, texts, max_length=decoding.max_length,
                                 description=f"classify {self.label}")
        id2label = self.model.config.id2label
        return _reorder(proba, [id2label[i] for i in range(proba.shape[1])], labels)


    def _entities(self, texts: list[str], decoding: Decoding) -> list[list[dict[str, Any]]]:
        if self.probe is None:
            return predict.tag(self.model, self.tokenizer, texts, max_length=decoding.max_length,
                               description=f"tag {self.label}")
        words, hidden = _word_states(self.model, self.tokenizer, texts, decoding, f"embed {self.label}")
        proba = self.probe.predict_proba(np.concatenate([h for h in hidden if len(h)]))  # one call for every word
        per_text = np.split(proba, np.cumsum([len(w) for w in words])[:-1])
        id2label = dict(enumerate(self.probe.classes_))
        return [tagging.entities(t, w, p, id2label) for t, w, p in zip(texts, words, per_text, strict=True)]


def _word_states(encoder: Any, tokenizer: Any, texts: list[str], decoding: Decoding,
                 description: str) -> tuple[list[tagging.Words], list[np.ndarray]]:
    """Each text's words and the frozen encoder's last hidden state at each word's first piece."""
    def hidden(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state

    return predict.word_outputs(hidden, tokenizer, texts, max_length=decoding.max_length, description=description)


def _reorder(proba: np.ndarray, have: list[str], want: list[str]) -> np.ndarray:
    """Probability columns in the evaluation's label order (a label the model never saw gets 0)."""
    out = np.zeros((proba.shape[0], len(want)))
    for j, label in enumerate(have):
        if label in want:
            out[:, want.index(label)] = proba[:, j]
    return out


def registered(store: Store, ref: str, role: str) -> Contender:
    record = store.get_model(ref)
    model, tokenizer = load_model(record)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Contender(record["id"], f"{record['name']} ({record['id']})", role, model, tokenizer,
                     note=f"{record['kind']} {record['task']} model, run {record['run_id']}", model_id=record["id"])


def base_contenders(store: Store, name: str, task: str, train: Any, train_kind: str, decoding: Decoding,
                    role: str = "base") -> list[Contender]:
    """The base line(s) for `name`: a probe for classification, zero-shot and k-shot prompting for generation."""
    from transformers import AutoModel, AutoModelForCausalLM

    base = resolve_base_model(name, store.workspace)
    tokenizer = load_tokenizer(base)  # as training loads it, pad token included
    if task == "classification":
        encoder = AutoModel.from_pretrained(base.path, dtype=torch.float32).eval()
        probe = fit_probe(encoder, tokenizer, train, decoding)
        return [Contender(f"base:{name}", f"{name} + linear probe", role, encoder, tokenizer, probe=probe,
                          note=f"frozen {name} encoder, mean-pooled, with a logistic-regression probe fitted on "
                               f"{min(train.num_rows, PROBE_TRAIN_ROWS)} train rows")]
    if task == "token_classification":
        encoder = AutoModel.from_pretrained(base.path, dtype=torch.float32).eval()
        probe, words = fit_token_probe(encoder, tokenizer, train, decoding)
        return [Contender(f"base:{name}", f"{name} + per-word probe", role, encoder, tokenizer, probe=probe,
                          note=f"frozen {name} encoder with a logistic-regression probe on each word's first-piece "
                               f"hidden state, predicting its BIO tag; fitted on {words:,} train words")]
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32).eval()
    zero = Contender(f"base:{name}", f"{name} zero-shot", role, model, tokenizer,
                     note=f"{name} prompted as in training")
    if decoding.shots <= 0:
        return [zero]
    shots = few_shot(train, train_kind, decoding.shots)
    k = Contender(f"base:{name}+{len(shots)}shot", f"{name} {len(shots)}-shot", role, model, tokenizer, shots=shots,
                  note=f"{name} with {len(shots)} train examples as earlier turns")
    return [zero, k]


def probe_rows(train: Any) -> Any:
    """PROBE_TRAIN_ROWS rows of the train split drawn with a fixed seed, in their order: files are often sorted (by
    intent, by label), and their first rows would show the probe a few classes only."""
    if train.num_rows <= PROBE_TRAIN_ROWS:
        return train
    picked = np.sort(np.random.default_rng(0).choice(train.num_rows, PROBE_TRAIN_ROWS, replace=False))
    return train.take(picked)


def fit_probe(encoder: Any, tokenizer: Any, train: Any, decoding: Decoding) -> Any:
    from sklearn.linear_model import LogisticRegression

    rows = probe_rows(train)
    texts = [t or "" for t in rows.column("text").to_pylist()]
    labels = [str(x) for x in rows.column("label").to_pylist()]
    if len(set(labels)) < 2:
        raise InputError("the train split has fewer than 2 labels, so no linear probe can be fitted for the base line")
    features = predict.embed(encoder, tokenizer, texts, max_length=decoding.max_length, description="embed probe")
    return LogisticRegression(max_iter=2000).fit(features, labels)


def fit_token_probe(encoder: Any, tokenizer: Any, train: Any, decoding: Decoding) -> tuple[Any, int]:
    """A logistic regression from word states to BIO tags (the tags training uses), on up to PROBE_TRAIN_WORDS
    words of the probe rows of the train split; and how many words it saw."""
    from sklearn.linear_model import LogisticRegression

    rows = probe_rows(train)
    texts = [t or "" for t in rows.column("text").to_pylist()]
    words, hidden = _word_states(encoder, tokenizer, texts, decoding, "embed probe")
    tags = [tag for w, spans in zip(words, rows.column("spans").to_pylist(), strict=True)
            for tag in tagging.word_tags(w, spans)]
    features = np.concatenate([h for h in hidden if len(h)])
    if len(tags) > PROBE_TRAIN_WORDS:  # a seeded sample of the words, for the same reason as the rows
        keep = np.random.default_rng(0).choice(len(tags), PROBE_TRAIN_WORDS, replace=False)
        features, tags = features[keep], [tags[i] for i in keep]
    if len(set(tags)) < 2:
        raise InputError("the train split has no entities, so no probe can be fitted for the base line")
    return LogisticRegression(max_iter=1000).fit(features, tags), len(tags)
