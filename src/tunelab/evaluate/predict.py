"""Batched inference for evaluation: examples sorted by length so each batch pads little, under inference_mode.

Every function returns results in the caller's order, whatever order the batches ran in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from tunelab.progress import progress_bar
from tunelab.train import tagging
from tunelab.train.data import IGNORE_INDEX


def _length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Index batches of similar lengths, longest first (a memory problem shows at once, not at the end)."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def _pad(rows: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length, verbose=False)["input_ids"]


def classify(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256,
             description: str = "classify") -> np.ndarray:
    """Class probabilities [n, num_labels] from a sequence-classification model."""
    ids = _tokenize(tokenizer, texts, max_length)
    out = np.zeros((len(ids), model.config.num_labels), dtype=np.float64)
    with torch.inference_mode(), progress_bar(description, len(ids)) as advance:
        for batch in _length_batches([len(x) for x in ids], batch_size):
            input_ids, mask = _pad([ids[i] for i in batch], tokenizer.pad_token_id)
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            out[batch] = torch.softmax(logits.float(), dim=-1).numpy()
            advance(len(batch))
    return out


def embed(encoder: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 256,
          description: str = "embed") -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings [n, hidden] (how sentence-transformers pools MiniLM)."""
    ids = _tokenize(tokenizer, texts, max_length)
    out: np.ndarray | None = None
    with torch.inference_mode(), progress_bar(description, len(ids)) as advance:
        for batch in _length_batches([len(x) for x in ids], batch_size):
            input_ids, mask = _pad([ids[i] for i in batch], tokenizer.pad_token_id)
            hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            if out is None:
                out = np.zeros((len(ids), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled
            advance(len(batch))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def word_outputs(run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tokenizer: Any, texts: Sequence[str], *,
                 batch_size: int = 32, max_length: int = 256, description: str = "tag"
                 ) -> tuple[list[tagging.Words], list[np.ndarray]]:
    """Each text's words (tagging.tokenize) and `run(input_ids, mask)`'s [tokens, D] output at their first pieces."""
    ids, words, _ = tagging.tokenize(tokenizer, texts, max_length)
    out: list[np.ndarray] = [np.zeros((0, 0))] * len(ids)
    with torch.inference_mode(), progress_bar(description, len(ids)) as advance:
        for batch in _length_batches([len(x) for x in ids], batch_size):
            input_ids, mask = _pad([ids[i] for i in batch], tokenizer.pad_token_id)
            values = run(input_ids, mask).float().numpy()
            for row, i in enumerate(batch):
                out[i] = values[row, [first for first, _, _ in words[i]]]
            advance(len(batch))
    return words, out


def tag(model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 256,
        description: str = "tag") -> list[list[dict[str, Any]]]:
    """Entities {start, end, label, text, score} a token-classification model finds in each text."""
    def probabilities(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(input_ids=input_ids, attention_mask=mask).logits.float(), dim=-1)

    words, probs = word_outputs(probabilities, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                                description=description)
    id2label = {int(i): label for i, label in model.config.id2label.items()}
    return [tagging.entities(t, w, p, id2label) for t, w, p in zip(texts, words, probs, strict=True)]


def generate(model: Any, tokenizer: Any, prompts: Sequence[list[int]], *, max_new_tokens: int, batch_size: int = 16,
             description: str = "generate") -> list[str]:
    """Greedy continuations of tokenised prompts, left-padded in length-sorted batches; decoded without specials."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = [""] * len(prompts)
    with torch.inference_mode(), progress_bar(description, len(prompts)) as advance:
        for batch in _length_batches([len(p) for p in prompts], batch_size):
            input_ids, mask = _pad([list(prompts[i]) for i in batch], pad_id, left=True)
            generated = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                       do_sample=False, use_cache=True, pad_token_id=pad_id,
                                       eos_token_id=stop_token_ids(tokenizer))
            texts = tokenizer.batch_decode(generated[:, input_ids.shape[1]:], skip_special_tokens=True)
            for i, text in zip(batch, texts, strict=True):
                out[i] = text.strip()
            advance(len(batch))
    return out


def stop_token_ids(tokenizer: Any) -> list[int]:
    """eos plus the chat end-of-turn token where the vocabulary has one (ChatML's <|im_end|>)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id >= 0:
            ids.add(token_id)
    return sorted(ids)


def token_nll(model: Any, input_ids: Sequence[list[int]], labels: Sequence[list[int]], *, pad_id: int,
              batch_size: int = 8, description: str = "perplexity") -> tuple[np.ndarray, np.ndarray]:
    """Per example: summed negative log-likelihood of its labelled tokens and how many there are."""
    nll = np.zeros(len(input_ids), dtype=np.float64)
    count = np.zeros(len(input_ids), dtype=np.int64)
    with torch.inference_mode(), progress_bar(description, len(input_ids)) as advance:
        for batch in _length_batches([len(x) for x in input_ids], batch_size):
            ids, mask = _pad([list(input_ids[i]) for i in batch], pad_id)
            target, _ = _pad([list(labels[i]) for i in batch], IGNORE_INDEX)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
            target = target[:, 1:]
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE_INDEX,
                                                       reduction="none")
            nll[batch] = losses.sum(1).double().numpy()
            count[batch] = (target != IGNORE_INDEX).sum(1).numpy()
            advance(len(batch))
    return nll, count
