"""`tunelab serve` settings: one schema that is the CLI flags, the defaults and the docs (docs/serving.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.config import Schema


class ServeSettings(Schema):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    models: list[str] = Field(default_factory=list, description="Models loaded at start: registered model ids or "
                              "names, base model short names, or model folders.")
    max_batch: int = Field(32, ge=1, le=1024, description="Most rows (prompts x n) generated together in one batch.")
    max_queue: int = Field(256, ge=1, description="Most requests waiting per base model; beyond it: 503 overloaded.")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; beyond it: 413.")
    max_tokens_cap: int = Field(1024, ge=1, description="Largest max_tokens a request may ask for; beyond it: 400. "
                                "Also the default when a request gives none.")
    log_texts: Literal["none", "redacted", "full"] = Field("none", description="Texts kept in the request log: none, "
                                                           "redacted (personal data replaced) or full.")
    allow_unapproved: bool = Field(False, description="Also serve registered models that are not approved for "
                                   "production (each is audited as serve.unapproved).")
    batch_wait_ms: float = Field(5.0, ge=0, le=1000, description="How long a worker waits for more requests to "
                                 "join a batch once one arrived.")
