"""The decode loop against transformers' own generate: batching, padding and rows leaving early change nothing."""

from __future__ import annotations

import asyncio

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.serve.decode import SamplingParams, generate, make_rows
from tunelab.serve.engine import Delta, Done, Job

PROMPTS = ["Hello", "Where is my order number 12? Please help me with the delivery", "refund the card"]


@pytest.fixture(scope="module")
def tiny(tiny_causal_lm):
    return AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval(), AutoTokenizer.from_pretrained(tiny_causal_lm)


def _run(model, tokenizer, prompts: list[str], limits: list[int], params: SamplingParams) -> list[tuple[str, str]]:
    """(text, finish reason) per prompt, all generated in one batch."""

    async def main() -> list[tuple[str, str]]:
        ids = [tokenizer(p)["input_ids"] for p in prompts]
        job = Job(ids, limits, params, adapter=None, tokenizer=tokenizer, stop_ids={tokenizer.eos_token_id})
        generate(model, make_rows(job, torch.device("cpu")), tokenizer.pad_token_id)
        texts, reasons = [""] * len(ids), [""] * len(ids)
        async for event in job.events(_connected):
            if isinstance(event, Delta):
                texts[event.index] += event.text
            elif isinstance(event, Done):
                reasons[event.index] = event.reason
        return list(zip(texts, reasons, strict=True))

    return asyncio.run(main())


async def _connected() -> bool:
    return False


def _alone(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_a_padded_batch_with_rows_ending_early_matches_each_prompt_alone(tiny):
    model, tokenizer = tiny
    limits = [3, 12, 7]
    batched = _run(model, tokenizer, PROMPTS, limits, SamplingParams(max_tokens=12, temperature=0))
    for prompt, limit, (text, reason) in zip(PROMPTS, limits, batched, strict=True):
        assert text == _alone(model, tokenizer, prompt, limit)
        assert reason == "length"


def test_sampling_follows_the_seed_whatever_the_batch(tiny):
    model, tokenizer = tiny
    params = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.9, seed=7)
    alone = _run(model, tokenizer, PROMPTS[:1], [8], params)
    batched = _run(model, tokenizer, PROMPTS, [8, 8, 8], params)
    assert alone[0] == batched[0] and len({t for t, _ in batched}) > 1


def test_stop_strings_end_a_row_with_finish_reason_stop(tiny):
    model, tokenizer = tiny
    free = _run(model, tokenizer, PROMPTS[:1], [12], SamplingParams(max_tokens=12, temperature=0))[0][0]
    stop = free[len(free) // 2:][:3]
    text, reason = _run(model, tokenizer, PROMPTS[:1], [12], SamplingParams(max_tokens=12, temperature=0,
                                                                          stop=(stop,)))[0]
    assert reason == "stop" and text == free[:free.index(stop)]
