"""The server's stage watch: a registered model leaves the server when its registry stage stops allowing it.

Loading checks the stage once; an erasure, a retirement or a deletion in another process comes later. So a thread
asks the store every `stage_check_s` seconds (one indexed query over the served models' ids) and withdraws what may
no longer be served, so a quarantined model stops answering within that bound and never again.
"""

from __future__ import annotations

import logging
import threading

from tunelab.serve.registry import ModelRegistry

logger = logging.getLogger("tunelab.serve")


class StageWatch:
    def __init__(self, registry: ModelRegistry, interval_s: float) -> None:
        self.registry, self.interval_s = registry, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """A fresh thread per start: an app's lifespan may run more than once (tests open it again)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="tunelab-stage-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            try:
                for model_id, reason in self.registry.withdraw_unservable():
                    logger.warning("withdrew %s: %s", model_id, reason)
            except Exception:  # a database hiccup must not end the watch: the next round tries again
                logger.exception("the stage watch could not check the served models")
