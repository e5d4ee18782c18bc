"""One batch of generation: left-padded prefill, then a decode loop over the KV cache where each row lives its own life.

Rows stop on their own (an end token, a stop string, max_tokens) while the others go on; a stopped or cancelled row
leaves the batch (and the cache) at the next step, so the batch only ever computes rows that still matter. Each row
samples with its own temperature, top_p and seed (greedy at temperature 0).

Left padding keeps every row's newest token in the last column. The attention mask hides the padding and position
ids count real tokens only, so a row's logits do not depend on what it is batched with (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tunelab.serve.text import IncrementalText

if TYPE_CHECKING:
    from tunelab.serve.engine import Job


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Row:
    """One choice being generated: a prompt of a job, its text so far and its random stream."""

    job: Job
    index: int  # the choice index in the job's answer
    prompt: list[int]
    text: IncrementalText
    generator: torch.Generator | None
    generated: int = 0


@dataclass
class Batch:
    """The state the decode loop carries from step to step."""

    rows: list[Row]
    cache: Any  # transformers' DynamicCache
    mask: torch.Tensor  # [rows, tokens so far]: 1 for real tokens, 0 for left padding
    positions: torch.Tensor  # [rows]: position id of each row's newest token
    logits: torch.Tensor  # [rows, vocab]: next-token logits


def make_rows(job: Job, device: torch.device) -> list[Row]:
    rows = []
    for index, prompt in enumerate(job.prompts):
        generator = None
        if job.params.temperature > 0:
            generator = torch.Generator(device=device)
            if job.params.seed is not None:
                generator.manual_seed(job.params.seed + index)
            else:
                generator.seed()
        rows.append(Row(job, index, prompt, IncrementalText(job.tokenizer, list(job.params.stop)), generator))
    return rows


@torch.inference_mode()
def generate(model: Any, rows: list[Row], pad_id: int) -> None:
    """Run rows to the end, sending each token's text to its job as it comes."""
    batch = prefill(model, rows, pad_id)
    while True:
        tokens = sample(batch.logits, batch.rows)
        keep = advance(batch.rows, tokens.tolist())
        if not keep:
            return
        if len(keep) < len(batch.rows):
            drop_finished(batch, keep)
            tokens = tokens[keep]
        step(model, batch, tokens)


def prefill(model: Any, rows: list[Row], pad_id: int) -> Batch:
    device = model.device
    width = max(len(r.prompt) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row.prompt):] = torch.tensor(row.prompt, dtype=torch.long)
        mask[i, width - len(row.prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    return Batch(rows, out.cache, mask, positions[:, -1], out.logits[:, -1].float())


def step(model: Any, batch: Batch, tokens: torch.Tensor) -> None:
    """Feed each row its newest token; extends the mask and positions and refreshes the logits."""
    batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
    batch.positions = batch.positions + 1
    out = model(input_ids=tokens[:, None], attention_mask=batch.mask, position_ids=batch.positions[:, None],
                cache=batch.cache, use_cache=True)
    batch.cache = out.cache
    batch.logits = out.logits[:, -1].float()


def sample(logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
    """Next token of every row: argmax for greedy rows, a draw from its own generator for the others."""
    tokens = logits.argmax(dim=-1)
    for i, row in enumerate(rows):
        params = row.job.params
        if params.temperature > 0:
            tokens[i] = _draw(logits[i], params.temperature, params.top_p, row.generator)
    return tokens


def _draw(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # the smallest head with mass >= top_p stays
        probs = probs.scatter(0, order, sorted_probs.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator)[0]


def advance(rows: list[Row], tokens: list[int]) -> list[int]:
    """Give each row its token; returns the indices of the rows that go on."""
    keep = []
    for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
        if row.job.cancelled:
            continue
        row.generated += 1
        stopped = token in row.job.stop_ids
        piece, stop_string = ("", False) if stopped else row.text.push(token)
        if stopped or stop_string:
            finish(row, "stop", piece)
        elif row.generated >= row.job.limits[row.index]:
            finish(row, "length", piece)
        else:
            if piece:
                row.job.send_text(row.index, piece)
            keep.append(i)
    return keep


def finish(row: Row, reason: str, piece: str) -> None:
    row.job.send_text(row.index, piece + row.text.flush())
    row.job.send_done(row.index, reason, row.generated)


def drop_finished(batch: Batch, keep: list[int]) -> None:
    index = torch.tensor(keep, device=batch.mask.device)
    batch.cache.batch_select_indices(index)
    batch.rows = [batch.rows[i] for i in keep]
    batch.mask = batch.mask[index]
    batch.positions = batch.positions[index]
