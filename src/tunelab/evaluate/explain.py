"""Which tokens pushed a classifier toward a label: token attributions and an HTML view of them.

Reviewers trust (or distrust) a tuned classifier faster when they see what it looks at. Two methods:
"integrated_gradients" (captum, on the input embeddings, from a baseline of pad tokens) and "occlusion" (blank one
token at a time and measure how much the target probability drops). Tokens are shown as the exact span of the
original text they cover (from the fast tokenizer's offsets), so WordPiece "##" pieces, "Ġ" or "▁" markers never
reach the reader and the text keeps its own spacing and case.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import torch
from captum.attr import LayerIntegratedGradients

from tunelab.errors import InputError

METHODS = ("integrated_gradients", "occlusion")
_OCCLUSION_BATCH = 32  # occluded copies per forward pass
_LEGEND = ('<p style="font-size:0.85em">'
           '<span style="background:rgba(0,160,0,0.6);padding:0 4px">green</span> pushes toward the label, '
           '<span style="background:rgba(220,0,0,0.6);padding:0 4px">red</span> pushes away; '
           'stronger colour, stronger effect.</p>')


def attribute(model, tokenizer, texts: Sequence[str], targets: Sequence[int], method: str = "integrated_gradients",
              steps: int = 32, max_length: int = 128) -> list[dict]:
    """Score each token of each text by how much it supports the classifier's `target` label.

    Args:
        model: a Hugging Face sequence classifier, possibly wrapped in a PEFT `PeftModel`; it is put in eval mode.
        tokenizer: its fast tokenizer (offsets map tokens back to the text).
        texts: the texts to explain.
        targets: for each text, the label id to explain (usually the predicted one).
        method: "integrated_gradients" or "occlusion".
        steps: integration steps for integrated gradients.
        max_length: texts are truncated to this many tokens.

    Returns:
        Per text: {"text", "tokens" (text spans, special tokens removed), "offsets" ([start, end] of each span),
        "scores" (one per token, scaled so the largest |score| is 1; positive supports the target), "target",
        "method"}, plus "convergence_delta" for integrated gradients (large next to 1: raise `steps`, which a very
        confident model needs).

    Raises:
        InputError: unknown method, texts and targets of different lengths, a target out of range, or a slow
            tokenizer.
    """
    _check(model, tokenizer, texts, targets, method)
    model.eval()
    return [_explain_one(model, tokenizer, text, int(target), method, steps, max_length)
            for text, target in zip(texts, targets, strict=True)]


def _explain_one(model, tokenizer, text: str, target: int, method: str, steps: int, max_length: int) -> dict:
    """Attribute one text, then keep only its real tokens (specials such as [CLS] and [SEP] are dropped)."""
    encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt",
                        return_offsets_mapping=True, return_special_tokens_mask=True)
    ids, mask = encoded["input_ids"].to(model.device), encoded["attention_mask"].to(model.device)
    special = encoded["special_tokens_mask"][0].bool().to(model.device)
    delta = None
    if method == "integrated_gradients":
        scores, delta = _integrated_gradients(model, tokenizer, ids, mask, special, target, steps)
    else:
        scores = _occlusion(model, tokenizer, ids, mask, special, target)
    offsets = [[start, end] for (start, end), is_special in zip(encoded["offset_mapping"][0].tolist(),
                                                                special.tolist(), strict=True) if not is_special]
    item = {"text": text, "tokens": [text[start:end] for start, end in offsets], "offsets": offsets,
            "scores": _normalise(scores[~special]), "target": target, "method": method}
    if delta is not None:
        item["convergence_delta"] = delta
    return item


def _check(model, tokenizer, texts: Sequence[str], targets: Sequence[int], method: str) -> None:
    """Reject what would fail later, or silently explain the wrong thing."""
    if method not in METHODS:
        raise InputError(f"Unknown attribution method '{method}'.", f"Use one of: {', '.join(METHODS)}.")
    if len(texts) != len(targets):
        raise InputError(f"Got {len(texts)} texts but {len(targets)} targets.", "Give one target label per text.")
    num_labels = model.config.num_labels
    bad = sorted({t for t in targets if not 0 <= t < num_labels})
    if bad:
        raise InputError(f"Target label ids {bad} are out of range: the model has {num_labels} labels.",
                         f"Use ids from 0 to {num_labels - 1} (see the model's id2label).")
    if not tokenizer.is_fast:
        raise InputError(f"Attributions need a fast tokenizer, got {type(tokenizer).__name__}.",
                         "Load it with AutoTokenizer.from_pretrained(path) (fast is the default).")


def _probabilities(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Class probabilities, the quantity both methods attribute."""
    return torch.softmax(model(input_ids=input_ids, attention_mask=attention_mask).logits, dim=-1)


def _integrated_gradients(model, tokenizer, ids, mask, special, target: int, steps: int) -> tuple[torch.Tensor, float]:
    """Integrated gradients on the embeddings, from the same sequence with every non-special token a pad token."""
    baseline = torch.where(special, ids, _filler_id(tokenizer, prefer_mask=False))
    explainer = LayerIntegratedGradients(lambda i, m: _probabilities(model, i, m), model.get_input_embeddings())
    with torch.enable_grad():
        attributions, delta = explainer.attribute(ids, baselines=baseline, additional_forward_args=(mask,),
                                                  target=target, n_steps=steps, internal_batch_size=steps,
                                                  return_convergence_delta=True)
    return attributions.sum(dim=-1)[0].detach(), float(delta.abs().max())


@torch.no_grad()
def _occlusion(model, tokenizer, ids, mask, special, target: int) -> torch.Tensor:
    """Drop in target probability when each token alone is replaced by the mask (or pad) token; specials score 0."""
    scores = torch.zeros(ids.shape[1], device=ids.device)
    positions = (~special).nonzero().flatten()
    if not len(positions):
        return scores
    copies = ids.repeat(len(positions), 1)
    copies[torch.arange(len(positions)), positions] = _filler_id(tokenizer, prefer_mask=True)
    original = _probabilities(model, ids, mask)[0, target]
    occluded = [_probabilities(model, chunk, mask.expand(len(chunk), -1))[:, target]
                for chunk in copies.split(_OCCLUSION_BATCH)]
    scores[positions] = original - torch.cat(occluded)
    return scores


def _filler_id(tokenizer, prefer_mask: bool) -> int:
    """The token that stands for 'no information': mask (occlusion only) or pad, else end-of-sequence."""
    candidates = ([tokenizer.mask_token_id] if prefer_mask else []) + [tokenizer.pad_token_id, tokenizer.eos_token_id]
    for token_id in candidates:
        if token_id is not None:
            return token_id
    raise InputError("The tokenizer has no mask, pad or end-of-sequence token to blank tokens with.",
                     "Set tokenizer.pad_token before explaining.")


def _normalise(scores: torch.Tensor) -> list[float]:
    """Scale so the strongest token has |score| 1: texts compare by rank, not by raw magnitude."""
    largest = scores.abs().max() if scores.numel() else 0
    return (scores / largest if largest > 0 else scores).tolist()


def render(items: list[dict], id2label: dict[int, str], captions: Sequence[str] | None = None) -> str:
    """An HTML fragment (inline styles only) with each text's tokens shaded by their attribution.

    Args:
        items: the output of `attribute`.
        id2label: label names, for the "toward label" line.
        captions: one caption per item (e.g. "true: spam, predicted: ham (error)"); default: none.

    Raises:
        InputError: the number of captions differs from the number of items.
    """
    if captions is not None and len(captions) != len(items):
        raise InputError(f"Got {len(captions)} captions for {len(items)} explained texts.", "Give one per text.")
    parts = ['<div class="tunelab-explain" style="font-family:sans-serif;line-height:1.8">', _LEGEND]
    for i, item in enumerate(items):
        label = id2label.get(item["target"], str(item["target"]))
        caption = html.escape(captions[i]) if captions is not None else ""
        parts.append(f'<figure style="margin:0 0 1em 0"><figcaption style="font-weight:bold">{caption}</figcaption>'
                     f'<div style="font-size:0.85em;color:#555">toward <b>{html.escape(label)}</b> '
                     f'({html.escape(item["method"])})</div><p style="margin:0.2em 0">{_shaded(item)}</p></figure>')
    parts.append("</div>")
    return "\n".join(parts)


def _shaded(item: dict) -> str:
    """The text with a coloured span per token; the text between tokens (spaces) is kept as it is."""
    text, out, end = item["text"], [], 0
    for (start, stop), score in zip(item["offsets"], item["scores"], strict=True):
        colour = "0,160,0" if score >= 0 else "220,0,0"
        out.append(html.escape(text[end:start]))
        out.append(f'<span title="{score:+.2f}" style="background:rgba({colour},{abs(score) * 0.8:.2f});'
                   f'border-radius:3px">{html.escape(text[start:stop])}</span>')
        end = stop
    if text[end:].strip():  # cut off by max_length
        out.append(f'<span style="color:#999" title="not seen by the model">{html.escape(text[end:])}</span>')
    return "".join(out)
