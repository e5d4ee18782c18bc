"""The engine's queue: bounded (503 beyond it), cancelled jobs skipped, waiting jobs told when the model leaves."""

from __future__ import annotations

import asyncio

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunelab.errors import NotFoundError
from tunelab.serve.decode import SamplingParams
from tunelab.serve.engine import Done, Engine, Job
from tunelab.serve.errors import ApiError


async def _connected() -> bool:
    return False


def test_a_full_queue_is_503_and_closing_fails_the_waiting_jobs(tiny_causal_lm):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_causal_lm), AutoTokenizer.from_pretrained(
        tiny_causal_lm)

    async def main() -> None:
        # a long batch wait keeps the first job waiting while the others arrive
        engine = Engine("tiny", model.eval(), tokenizer.pad_token_id, max_batch=4, max_queue=2, batch_wait_ms=1000)

        def job() -> Job:
            return Job([tokenizer("Hello")["input_ids"]], [4], SamplingParams(max_tokens=4, temperature=0),
                       adapter=None, tokenizer=tokenizer, stop_ids=set())

        first, cancelled, waiting = job(), job(), job()
        cancelled.cancelled = True
        engine.submit(first)
        engine.submit(cancelled)
        with pytest.raises(ApiError) as full:
            engine.submit(job())
        assert full.value.status == 503 and "overloaded" in full.value.message
        events = [e async for e in first.events(_connected)]  # the cancelled job was skipped, not run
        assert isinstance(events[-1], Done) and events[-1].tokens == 4
        engine.submit(waiting)
        await asyncio.to_thread(engine.close)
        with pytest.raises(NotFoundError, match="tiny was unloaded"):
            [e async for e in waiting.events(_connected)]

    asyncio.run(main())
