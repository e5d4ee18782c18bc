"""Catastrophic forgetting: the same general-domain check on the base model and on the fine-tuned one.

The reference text is a slice of WikiText-2 shipped with tunelab (`reference/`, CC BY-SA 3.0, licence beside it).
- causal models: perplexity on fixed windows of the text (lower is better);
- encoders: a general retrieval task built from the text: each paragraph's first half must find its own second half
  among all second halves by embedding similarity (recall@1, higher is better). all-MiniLM-style encoders are trained
  for exactly this kind of matching, so a drop shows the tuned encoder lost general sentence understanding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tunelab.evaluate import predict

REFERENCE = Path(__file__).parent / "reference" / "wikitext2.txt"
WINDOW_TOKENS = 256
MAX_WINDOWS = 32
MAX_PARAGRAPHS = 200


def reference_paragraphs() -> list[str]:
    return [line for line in REFERENCE.read_text(encoding="utf-8").splitlines() if line.strip()]


def perplexity(model: Any, tokenizer: Any, windows: int = MAX_WINDOWS) -> float:
    """Perplexity over the first `windows` non-overlapping windows of the reference text."""
    ids = tokenizer("\n\n".join(reference_paragraphs()), add_special_tokens=False, verbose=False)["input_ids"]
    chunks = [ids[i:i + WINDOW_TOKENS] for i in range(0, len(ids) - WINDOW_TOKENS + 1, WINDOW_TOKENS)][:windows]
    nll, count = predict.token_nll(model, chunks, chunks, pad_id=tokenizer.pad_token_id or 0,
                                   description="reference perplexity")
    return float(np.exp(nll.sum() / max(count.sum(), 1)))


def retrieval_recall(encoder: Any, tokenizer: Any, paragraphs: int = MAX_PARAGRAPHS) -> float:
    """Recall@1 of first halves retrieving their own second halves (cosine similarity of mean-pooled embeddings)."""
    firsts, seconds = [], []
    for text in reference_paragraphs()[:paragraphs]:
        words = text.split()
        half = len(words) // 2
        firsts.append(" ".join(words[:half]))
        seconds.append(" ".join(words[half:]))
    queries = predict.embed(encoder, tokenizer, firsts, max_length=128, description="reference retrieval")
    keys = predict.embed(encoder, tokenizer, seconds, max_length=128, description="reference retrieval")
    hits = (queries @ keys.T).argmax(axis=1) == np.arange(len(firsts))
    return float(hits.mean())


def encoder_of(model: Any) -> Any:
    """The encoder body of a sequence-classification model (e.g. BertForSequenceClassification.bert)."""
    return getattr(model, model.base_model_prefix, model)


def compare(before: float, after: float, higher_is_better: bool, threshold: float, metric: str) -> dict[str, Any]:
    """Relative degradation from base to tuned, flagged above `threshold` (0.1 = 10 % worse)."""
    change = (before - after) / before if higher_is_better else (after - before) / before
    flagged = bool(change > threshold)
    direction = "lower" if higher_is_better else "higher"
    reason = (f"{metric} on the general-domain reference is {change:.1%} worse after tuning ({before:.4g} -> "
              f"{after:.4g}, {direction} is worse); threshold {threshold:.0%}") if flagged else ""
    return {"metric": metric, "base": before, "tuned": after, "degradation": change, "threshold": threshold,
            "flagged": flagged, "reason": reason, "reference": "WikiText-2 test slice (CC BY-SA 3.0)"}
