"""The request log: one row per request the server answers, for monitoring (latency, tokens, errors, drift).

The texts of a request and its answer are stored as configured: "none" (the default: no texts at all), "redacted"
(personal data replaced by placeholders such as <PERSON>, with the same Presidio detector as `data prepare`) or
"full". Redaction takes milliseconds per text and a database write may wait on a lock, so the server hands rows to a
background thread through a queue and the event loop never waits for either.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tunelab.errors import InputError
from tunelab.store import Store
from tunelab.store.store import DEFAULT_PROJECT

logger = logging.getLogger(__name__)

TEXT_MODES = ("none", "redacted", "full")
_BATCH = 100  # rows written per transaction at most
_STOP = object()


@dataclass
class _Entry:
    values: dict[str, Any]
    texts: tuple[str | None, str | None]


class RequestLogger:
    """Writes request-log rows; after `start()` in a background thread, before it (or after `close()`) directly."""

    def __init__(self, store: Store, texts: str = "none", max_queue: int = 10_000) -> None:
        if texts not in TEXT_MODES:
            raise InputError(f"unknown request-log texts setting {texts!r}", f"use one of {', '.join(TEXT_MODES)}")
        self.store = store
        self.texts = texts
        self.dropped = 0  # rows lost because the queue was full (the database could not keep up)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._redaction_failed = False

    def start(self) -> RequestLogger:
        """Run the writer thread; `close()` (also called at interpreter exit) writes what is queued, then stops it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tunelab-request-log", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        return self

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        atexit.unregister(self.close)

    def __enter__(self) -> RequestLogger:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def log(self, key_id: str | None, model: str | None, endpoint: str, status: int, latency_ms: float,
            prompt_tokens: int | None = None, completion_tokens: int | None = None, request_text: str | None = None,
            response_text: str | None = None, error: str | None = None, *, actor: str | None = None,
            project: str | None = None) -> None:
        """Record one request, in its caller's project (a refused one without a caller: the default project).
        Never blocks once started: with the queue full the row is dropped and counted."""
        values = {"at": datetime.now(UTC).replace(tzinfo=None), "key_id": key_id, "model": model,
                  "actor": actor, "project_id": project or DEFAULT_PROJECT,
                  "endpoint": endpoint, "status": status, "latency_ms": float(latency_ms),
                  "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "error": error}
        entry = _Entry(values, (request_text, response_text) if self.texts != "none" else (None, None))
        if self._thread is None:
            self._write([entry])
            return
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            logger.warning("request log queue full: %d row(s) dropped so far", self.dropped)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(e is _STOP for e in batch)
            batch = [e for e in batch if e is not _STOP]
            if batch:
                try:
                    self._write(batch)
                except Exception:  # a lost log row must not take the server down; say so and go on
                    logger.exception("could not write %d request-log row(s)", len(batch))
            if stop:
                return

    def _write(self, entries: list[_Entry]) -> None:
        texts = self._stored_texts([t for e in entries for t in e.texts])
        rows = [{**e.values, "request_text": texts[2 * i], "response_text": texts[2 * i + 1]}
                for i, e in enumerate(entries)]
        self.store.add_requests(rows)

    def _stored_texts(self, texts: list[str | None]) -> list[str | None]:
        if self.texts != "redacted":
            return texts
        try:
            return redact(texts)
        except Exception as exc:  # fail closed: without a working detector no text is stored
            if not self._redaction_failed:
                logger.error("request log: redaction failed, storing no texts: %s", exc)
                self._redaction_failed = True
            return [None] * len(texts)


def redact(texts: list[str | None]) -> list[str | None]:
    """Personal data replaced by <ENTITY> placeholders. The detector is built on first use, once per process."""
    from tunelab.data.pii import apply_pii, find_pii

    present = [t for t in texts if t]
    spans = iter(find_pii(present, workers=1))
    return [apply_pii(t, next(spans), "redact") if t else t for t in texts]
