"""API keys for the OpenAI-compatible server: create, list, revoke, authenticate, rate-limit.

A key reads `tl-<id>.<secret>`: the id (10 hex characters) is public and names the key in lists, logs and the audit
trail; the secret (`secrets.token_urlsafe(32)`, 256 random bits) is shown once and stored only as
HMAC-SHA256(salt, secret) with a random 16-byte salt per key.

A key belongs to the project it was made in and carries scopes: `inference` (call the served models: /v1 chat,
completions, embeddings, classifications, entities, models, /metrics) and `manage` (load and unload models on a running
server, and log a key's user in to the CLI). Who the key acts as is `tunelab.govern.credentials`' business.

A fast hash is the right tool here, unlike for passwords: a slow hash (bcrypt, scrypt) protects guessable secrets
from brute force, but nobody can enumerate 2**256 random secrets however fast the hash is, and the server verifies
the key on every request, where a slow hash would cost tens of milliseconds each time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from tunelab.errors import AuthError, InputError, NotFoundError
from tunelab.store import Store

PREFIX = "tl-"
_KEY = re.compile(r"tl-([0-9a-f]{10})\.([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key
SCOPES = ("inference", "manage")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the store keeps naive UTC


@dataclass
class ApiKey:
    """What the server knows about a key; never its secret nor its hash."""

    id: str
    name: str
    models: list[str] | None
    rate_limit: int | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    user_id: str | None = None  # the user the key acts as; None: a key of its project alone
    scopes: tuple[str, ...] = ("inference",)
    project: str = "default"

    @property
    def admin(self) -> bool:
        """The older name of the `manage` scope, derived so the two cannot disagree."""
        return "manage" in self.scopes

    def allows(self, model: str) -> bool:
        """A key limited to some models may call only those (the server answers 404 for the others)."""
        return self.models is None or model in self.models

    def state(self, now: datetime | None = None) -> str:
        now = now or _now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def _from_row(row: dict[str, Any]) -> ApiKey:
    scopes = tuple(row.get("scopes") or ("inference",))
    return ApiKey(id=row["id"], name=row["name"], models=row["models"], rate_limit=row["rate_limit"],
                  created_at=row["created_at"], expires_at=row["expires_at"],
                  revoked_at=row["revoked_at"], last_used_at=row["last_used_at"], user_id=row.get("user_id"),
                  scopes=scopes, project=row.get("project_id") or "default")


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


class KeyView(BaseModel):
    """A key as `keys list` and `keys revoke` show it, and any other front end: never its secret nor its hash."""

    id: str
    name: str
    models: list[str] | None
    rate_limit: int | None
    admin: bool
    scopes: list[str]
    project: str
    state: Literal["active", "revoked", "expired"]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        return cls(id=key.id, name=key.name, models=key.models, rate_limit=key.rate_limit, admin=key.admin,
                   scopes=list(key.scopes), project=key.project, state=key.state(), created_at=key.created_at,
                   expires_at=key.expires_at, revoked_at=key.revoked_at, last_used_at=key.last_used_at)


class KeyCreated(BaseModel):
    """A new key with its plaintext `key`, the one time it exists outside the caller's hands: a front end shows it
    once and keeps it nowhere."""

    key: str
    id: str
    name: str
    models: list[str] | None
    expires_at: datetime | None
    rate_limit: int | None
    admin: bool
    scopes: list[str]
    project: str

    @property
    def state(self) -> str:
        return "active"  # a key is made neither revoked nor expired (--expires must lie ahead)


# ---------------------------------------------------------------------------------------------- managing keys


def parse_expires(value: str, now: datetime | None = None) -> datetime:
    """A duration from now ("90m", "12h", "30d", "2w") or an ISO date or datetime (a date means 00:00 UTC that day;
    a datetime without a zone is UTC). Returns naive UTC, as the store keeps it."""
    now = now or _now()
    text = value.strip().lower()
    if match := _DURATION.fullmatch(text):
        amount, unit = int(match[1]), match[2]
        if amount == 0:
            raise InputError(f"--expires {value!r} is zero", "give a positive duration, e.g. 30d")
        return now + timedelta(**{_UNITS[unit]: amount})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"--expires {value!r} is neither a duration nor an ISO date",
                         "use e.g. 90m, 12h, 30d, 2w, 2027-01-31 or 2027-01-31T18:00:00Z") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    if when <= now:
        raise InputError(f"--expires {value!r} is in the past", "give a future date or a duration such as 30d")
    return when


def _scopes(scopes: list[str] | None, admin: bool, user_id: str | None) -> tuple[str, ...]:
    """The scopes asked for; by default `inference`, plus `manage` for `--admin` and for a user's key (its CLI
    login)."""
    if scopes is None:
        scopes = ["inference", "manage"] if admin or user_id else ["inference"]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise InputError(f"unknown --scope {', '.join(unknown)}", f"scopes: {', '.join(SCOPES)}")
    if not scopes:
        raise InputError("a key needs at least one scope", f"scopes: {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in scopes or (admin and s == "manage"))


def _check_options(name: str, models: list[str] | None, rate_limit: int | None) -> None:
    if not name.strip():
        raise InputError("a key needs a name", "e.g. --name support-bot")
    if models is not None and not [m for m in models if m.strip()]:
        raise InputError("--models is empty", "name at least one model, or leave --models out for every model")
    if rate_limit is not None and rate_limit < 1:
        raise InputError(f"--rate-limit {rate_limit} is not a positive number of requests per minute",
                         "e.g. --rate-limit 60, or leave it out for no limit")


def create_key(store: Store, name: str, models: list[str] | None = None, expires: str | None = None,
               rate_limit: int | None = None, admin: bool = False, user_id: str | None = None,
               scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """Make a key of the store's project; returns it and its plaintext `tl-<id>.<secret>`, which exists nowhere
    else afterwards.

    With `user_id` the key acts as that user (in its project only), also in the CLI (TUNELAB_API_KEY) when it has
    the `manage` scope. `admin` is the older spelling of the `manage` scope.
    """
    _check_options(name, models, rate_limit)
    granted = _scopes(scopes, admin, user_id)
    expires_at = parse_expires(expires) if expires else None
    key_id, secret, salt = secrets.token_hex(5), secrets.token_urlsafe(32), secrets.token_bytes(16)
    while store.find_api_key(key_id) is not None:  # one in a trillion, but an id must name one key
        key_id = secrets.token_hex(5)
    allowed = sorted({m.strip() for m in models if m.strip()}) if models is not None else None
    key = ApiKey(id=key_id, name=name.strip(), models=allowed, rate_limit=rate_limit, created_at=_now(),
                 expires_at=expires_at, user_id=user_id, scopes=granted, project=store.project)
    store.add_api_key(id=key.id, name=key.name, salt=salt.hex(), hash=_digest(salt, secret), models=key.models,
                      rate_limit=key.rate_limit, admin=key.admin, created_at=key.created_at, expires_at=expires_at,
                      user_id=user_id, scopes=list(granted), project_id=store.project)
    store.audit("keys.create", key.id, {"name": key.name, "models": key.models, "rate_limit": rate_limit,
                                        "scopes": list(granted), "user_id": user_id,
                                        "expires_at": expires_at.isoformat() if expires_at else None})
    return key, f"{PREFIX}{key_id}.{secret}"


def list_keys(store: Store) -> list[ApiKey]:
    """Every key, oldest first, revoked and expired ones included (their state says so)."""
    return [_from_row(row) for row in store.list_api_keys()]


def create(store: Store, name: str, models: list[str] | None = None, expires: str | None = None,
           rate_limit: int | None = None, admin: bool = False, user: str | None = None,
           scopes: list[str] | None = None) -> KeyCreated:
    """`create_key` for a front end: `user` is a user's or service account's name (`tunelab.govern.users.key_owner`
    checks who may make a key for whom), and the result carries the plaintext key, once."""
    from tunelab.govern.users import key_owner

    key, plaintext = create_key(store, name, models=models, expires=expires, rate_limit=rate_limit, admin=admin,
                                user_id=key_owner(store, user) if user else None, scopes=scopes)
    return KeyCreated(key=plaintext, id=key.id, name=key.name, models=key.models, expires_at=key.expires_at,
                      rate_limit=key.rate_limit, admin=key.admin, scopes=list(key.scopes), project=key.project)


def views(store: Store) -> list[KeyView]:
    """`list_keys` as front ends show them."""
    return [KeyView.of(key) for key in list_keys(store)]


def revoke(store: Store, key_id: str) -> KeyView:
    """`revoke_key` as front ends show the result."""
    return KeyView.of(revoke_key(store, key_id))


def revoke_key(store: Store, key_id: str) -> ApiKey:
    """Refuse the key from now on, in running servers too (they look the key up on every request).

    `key_id` may be given with or without the `tl-` prefix; revoking a revoked key changes nothing.
    """
    ref = key_id.strip().removeprefix(PREFIX).partition(".")[0]  # a pasted full key works; its secret is ignored
    row = store.find_api_key(ref)
    if row is None or row["project_id"] != store.project:  # another project's key is not there to revoke
        recent = [k.id for k in reversed(list_keys(store))][:5]
        raise NotFoundError(f"no API key {ref!r}", f"recent keys: {', '.join(recent)}" if recent
                            else "create one with `tunelab keys create --name NAME`")
    if row["revoked_at"] is None:
        row["revoked_at"] = _now()
        store.update_api_key(ref, revoked_at=row["revoked_at"])
        store.audit("keys.revoke", ref, {"name": row["name"]})
    return _from_row(row)


# ---------------------------------------------------------------------------------------------- per request


def authenticate(store: Store, authorization: str | None) -> ApiKey:
    """The key behind an `Authorization: Bearer tl-...` header, or AuthError.

    The key is read from the store and its hash checked on every call, with no cache, so a revocation takes effect
    at once. Revocation and expiry are checked only after the secret matched, so they tell nothing to a guesser.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if not authorization or not authorization.strip():
        raise AuthError("missing API key", "send the header `Authorization: Bearer tl-...`")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header is not `Bearer <key>`", "send `Authorization: Bearer tl-...`")
    match = _KEY.fullmatch(token.strip())
    if match is None:
        raise AuthError("malformed API key: tunelab keys look like tl-<10 hex>.<43 characters>",
                        "check the key you were given, or create one with `tunelab keys create`")
    key_id, secret = match[1], match[2]
    row = store.find_api_key(key_id)
    if row is None or not hmac.compare_digest(_digest(bytes.fromhex(row["salt"]), secret), row["hash"]):
        raise AuthError("invalid API key", "check the key, or create one with `tunelab keys create`")
    key, now = _from_row(row), _now()
    if key.revoked_at is not None:
        raise AuthError(f"API key {PREFIX}{key.id} was revoked", "ask for a new key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError(f"API key {PREFIX}{key.id} expired at {key.expires_at.isoformat()} UTC", "ask for a new key")
    if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
        store.update_api_key(key.id, last_used_at=now)
        key.last_used_at = now
    return key


class RateLimiter:
    """A token bucket per key, in memory: `rate_limit` requests at once, refilled at rate_limit/60 per second.

    One server process holds the buckets; they start full again when it restarts. Thread-safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when counted)

    def check(self, key: ApiKey) -> float | None:
        """None when the request may go ahead (and it is counted), else the seconds to wait before the next one."""
        if key.rate_limit is None:
            return None
        capacity, per_second = float(key.rate_limit), key.rate_limit / 60.0
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.get(key.id, (capacity, now))
            tokens = min(capacity, tokens + (now - then) * per_second)
            if tokens >= 1.0:
                self._buckets[key.id] = (tokens - 1.0, now)
                return None
            self._buckets[key.id] = (tokens, now)
            return (1.0 - tokens) / per_second
