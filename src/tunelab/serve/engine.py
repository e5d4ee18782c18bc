"""Generation off the event loop: one worker thread per causal model in memory, fed through a bounded queue.

The route turns a request into a `Job` (its prompts, one row each, and sampling parameters) and `submit`s it; a full
queue is a 503. The worker takes the oldest job and every waiting job for the same adapter, up to `max_batch` rows,
and runs them as one batch (`decode.generate`). Text comes back through the job as it is generated: the worker
hands each piece to the event loop with `call_soon_threadsafe`, and the route reads them with `Job.events`.

A job whose client went away is flagged `cancelled`; the worker drops its rows at the next step (or skips it if it
is still waiting). The registry holds `Engine.lock` to change the model's adapters between batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tunelab.errors import NotFoundError, TunelabError
from tunelab.serve.decode import SamplingParams, generate, make_rows
from tunelab.serve.errors import ApiError

logger = logging.getLogger("tunelab.serve")

_POLL_S = 0.5  # how often a waiting route checks whether its client is still there


@dataclass(frozen=True)
class Delta:
    index: int
    text: str


@dataclass(frozen=True)
class Done:
    index: int
    reason: str  # "stop" | "length"
    tokens: int


class Job:
    """One request's generation: its rows, and the channel from the worker thread back to the route."""

    def __init__(self, prompts: list[list[int]], limits: list[int], params: SamplingParams, *, adapter: str | None,
                 tokenizer: Any, stop_ids: set[int]) -> None:
        self.prompts, self.limits, self.params = prompts, limits, params
        self.adapter, self.tokenizer, self.stop_ids = adapter, tokenizer, stop_ids
        self.cancelled = False
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Delta | Done | BaseException] = asyncio.Queue()

    # the worker's side
    def send_text(self, index: int, text: str) -> None:
        if text:
            self._put(Delta(index, text))

    def send_done(self, index: int, reason: str, tokens: int) -> None:
        self._put(Done(index, reason, tokens))

    def fail(self, error: BaseException) -> None:
        self._put(error)

    def _put(self, item: Delta | Done | BaseException) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancelled = True

    # the route's side
    async def events(self, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[Delta | Done]:
        """Pieces and row ends until every row is done; stops early (flagging the job) if the client went away,
        which it checks every _POLL_S whether or not text is flowing."""
        remaining, checked = len(self.prompts), time.monotonic()
        while remaining and not self.cancelled:
            try:
                item = await asyncio.wait_for(self._events.get(), _POLL_S)
            except TimeoutError:
                item = None
            if time.monotonic() - checked >= _POLL_S:
                checked = time.monotonic()
                if await disconnected():
                    self.cancelled = True
                    return
            if item is None:
                continue
            if isinstance(item, BaseException):
                raise item
            remaining -= isinstance(item, Done)
            yield item


class Engine:
    """A worker thread that owns one causal model (a base with its LoRA adapters, or a full model)."""

    def __init__(self, name: str, model: Any, pad_id: int, *, max_batch: int, max_queue: int, batch_wait_ms: float,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.name, self.model, self.pad_id = name, model, pad_id
        self.max_batch, self.max_queue, self.batch_wait = max_batch, max_queue, batch_wait_ms / 1000
        self.lock = threading.Lock()  # held while a batch runs
        self._on_batch = on_batch
        self._waiting: deque[Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=f"tunelab-engine-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._ready:
            if self._closed:
                raise NotFoundError(f"model {self.name} was unloaded")
            if len(self._waiting) >= self.max_queue:
                raise ApiError(503, f"the server is overloaded: {len(self._waiting)} requests are waiting for "
                                    f"{self.name}; retry later", code="overloaded")
            self._waiting.append(job)
            self._ready.notify()

    def close(self) -> None:
        """Stop the worker after its current batch; waiting jobs fail with a 404."""
        with self._ready:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            self._ready.notify()
        for job in waiting:
            job.fail(NotFoundError(f"model {self.name} was unloaded"))
        self._thread.join()

    def _work(self) -> None:
        while (jobs := self._take()) is not None:
            if jobs:  # empty when every waiting job was cancelled
                self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        """One batch; its requests get the error if it fails (a 500 for a bug), and the worker goes on."""
        adapter = jobs[0].adapter
        try:
            with self.lock:  # the adapter is checked and used with no unload in between
                if adapter is not None and adapter not in getattr(self.model, "peft_config", {}):
                    raise NotFoundError(f"model {adapter} was unloaded")
                rows = [row for job in jobs for row in make_rows(job, self.model.device)]
                if self._on_batch:
                    self._on_batch(len(rows))
                with use_adapter(self.model, adapter):
                    generate(self.model, rows, self.pad_id)
        except Exception as exc:
            if not isinstance(exc, TunelabError):
                logger.exception("generation failed on %s", self.name)
            for job in jobs:
                job.fail(exc)

    def _take(self) -> list[Job] | None:
        """Wait for work, give others `batch_wait` to join, then take the oldest job's adapter's jobs."""
        with self._ready:
            while not self._waiting and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            short = sum(len(j.prompts) for j in self._waiting) < self.max_batch
        if short and self.batch_wait:
            time.sleep(self.batch_wait)
        with self._ready:
            return self._select()

    def _select(self) -> list[Job]:
        """The oldest live job and the later ones for the same adapter, up to max_batch rows; cancelled ones leave."""
        taken: list[Job] = []
        rows = 0
        for job in list(self._waiting):
            if job.cancelled:
                self._waiting.remove(job)
            elif not taken or (job.adapter == taken[0].adapter and rows + len(job.prompts) <= self.max_batch):
                self._waiting.remove(job)
                taken.append(job)
                rows += len(job.prompts)
        return taken


@contextmanager
def use_adapter(model: Any, adapter: str | None) -> Iterator[None]:
    """Route the batch through one LoRA adapter, or through the bare base with every adapter switched off."""
    if not hasattr(model, "peft_config"):
        yield
    elif adapter is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(adapter)
        yield
