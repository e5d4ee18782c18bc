"""`tunelab serve` settings: one schema that is the CLI flags, the defaults and the docs (docs/serving.md)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

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
    stage_check_s: float = Field(2.0, gt=0, le=3600, description="How often the server rechecks the registry stage "
                                 "of the registered models it serves; one an erasure quarantined (or that is no longer "
                                 "servable) is withdrawn within this time.")
    batch_wait_ms: float = Field(5.0, ge=0, le=1000, description="How long a worker waits for more requests to "
                                 "join a batch once one arrived.")
    trusted_proxy_header: str | None = Field(None, description="A header (e.g. X-Forwarded-User) naming the tunelab "
                                             "user a trusted proxy logged in; only believed from trusted_proxies.")
    trusted_proxies: list[str] = Field(default_factory=list, description="Addresses or networks (10.0.0.0/8) of the "
                                       "proxies whose user header is believed.")
    project_header: str = Field("X-Tunelab-Project", description="The header a proxied request names its project "
                                "in (default project without it); a key's project is the key's own.")

    _proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = PrivateAttr(default=())

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
        return values

    @model_validator(mode="after")
    def _header_needs_proxies(self) -> ServeSettings:
        """A user header believed from anywhere would let any client name any user."""
        if self.trusted_proxy_header and not self.trusted_proxies:
            raise ValueError("trusted_proxy_header needs trusted_proxies: the addresses of the proxies to believe")
        self._proxy_networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies)  # parsed once
        return self

    def trusts(self, address: str | None) -> bool:
        """Whether a request from `address` may name its user in `trusted_proxy_header`."""
        if not self.trusted_proxy_header or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxy_networks)
