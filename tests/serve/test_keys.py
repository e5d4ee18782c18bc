"""API keys and the request log: only hashes stored, every refusal a 401 without the secret, revocation at once."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import inspect

from tunelab.errors import AuthError, ConflictError, InputError, NotFoundError, RateLimitError, TunelabError
from tunelab.govern.keys import ApiKey, RateLimiter, authenticate, create_key, list_keys, parse_expires, revoke_key
from tunelab.serve.requestlog import RequestLogger
from tunelab.store import open_store


def _secret(plaintext: str) -> str:
    return plaintext.partition(".")[2]


def _database_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("tunelab.db*")))


def test_migrations_create_the_serving_tables(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"api_keys", "request_log"} <= tables


def test_errors_carry_their_http_status():
    assert (TunelabError.status, InputError.status, NotFoundError.status, ConflictError.status) == (500, 400, 404, 409)
    assert (AuthError.status, RateLimitError.status) == (401, 429)
    assert RateLimitError("slow down", retry_after=2.5).retry_after == 2.5


def test_create_then_authenticate_round_trip(store):
    key, plaintext = create_key(store, "support-bot", models=["support-v2"], rate_limit=60, admin=True)
    assert plaintext.startswith(f"tl-{key.id}.") and len(key.id) == 10 and len(_secret(plaintext)) == 43
    found = authenticate(store, f"Bearer {plaintext}")
    assert (found.id, found.name, found.models, found.rate_limit, found.admin) == (
        key.id, "support-bot", ["support-v2"], 60, True)
    assert found.last_used_at is not None
    assert authenticate(store, f"bearer  {plaintext} ").id == key.id  # scheme is case-insensitive


def test_the_database_holds_no_plaintext(store, workspace):
    key, plaintext = create_key(store, "bot")
    authenticate(store, f"Bearer {plaintext}")
    data = _database_bytes(workspace)
    assert key.id.encode() in data  # the file really is the one written
    assert _secret(plaintext).encode() not in data and plaintext.encode() not in data


def test_last_use_is_written_at_most_once_a_minute(store):
    key, plaintext = create_key(store, "bot")
    first = authenticate(store, f"Bearer {plaintext}").last_used_at
    assert authenticate(store, f"Bearer {plaintext}").last_used_at == first
    store.update_api_key(key.id, last_used_at=first - timedelta(minutes=2))
    assert authenticate(store, f"Bearer {plaintext}").last_used_at > first - timedelta(minutes=2)


def _refusals(store) -> dict[str, tuple[str | None, str, str]]:
    """Case -> (header, the secret that must not leak, expected message)."""
    key, plaintext = create_key(store, "bot")
    revoked, revoked_text = create_key(store, "old")
    revoke_key(store, revoked.id)
    expired, expired_text = create_key(store, "temp", expires="1h")
    store.update_api_key(expired.id, expires_at=datetime(2000, 1, 1))
    wrong = _secret(plaintext)[::-1]
    return {
        "missing": (None, _secret(plaintext), "missing API key"),
        "empty": ("", _secret(plaintext), "missing API key"),
        "not bearer": (f"Basic {plaintext}", _secret(plaintext), "not `Bearer <key>`"),
        "malformed": (f"Bearer {plaintext[:-3]}", _secret(plaintext)[:-3], "malformed API key"),
        "wrong secret": (f"Bearer tl-{key.id}.{wrong}", wrong, "invalid API key"),
        "unknown id": (f"Bearer tl-0000000000.{_secret(plaintext)}", _secret(plaintext), "invalid API key"),
        "revoked": (f"Bearer {revoked_text}", _secret(revoked_text), "was revoked"),
        "expired": (f"Bearer {expired_text}", _secret(expired_text), "expired at 2000-01-01"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "not bearer", "malformed", "wrong secret", "unknown id",
                                  "revoked", "expired"])
def test_refusals_are_auth_errors_that_never_echo_the_secret(store, case):
    header, secret, message = _refusals(store)[case]
    with pytest.raises(AuthError, match=message) as caught:
        authenticate(store, header)
    assert caught.value.status == 401
    assert secret not in str(caught.value) and secret not in repr(caught.value.args)


def test_revocation_is_seen_at_once_by_another_store_on_the_same_database(store):
    key, plaintext = create_key(store, "bot")
    server = open_store()  # what a running server holds
    try:
        assert authenticate(server, f"Bearer {plaintext}").id == key.id
        revoke_key(store, f"tl-{key.id}")
        with pytest.raises(AuthError, match="was revoked"):
            authenticate(server, f"Bearer {plaintext}")
    finally:
        server.close()


def test_revoke_unknown_lists_recent_keys_and_revoking_twice_changes_nothing(store):
    key, _ = create_key(store, "bot")
    with pytest.raises(NotFoundError, match="no API key 'ffffffffff'") as caught:
        revoke_key(store, "ffffffffff")
    assert key.id in caught.value.hint
    first = revoke_key(store, key.id).revoked_at
    assert revoke_key(store, key.id).revoked_at == first
    assert [k.state() for k in list_keys(store)] == ["revoked"]
    assert sum(e["action"] == "keys.revoke" for e in store.audit_log()) == 1


def test_a_key_limited_to_some_models_allows_only_those(store):
    limited, _ = create_key(store, "bot", models=["support-v2", "triage"])
    every, _ = create_key(store, "admin")
    assert limited.allows("triage") and not limited.allows("smollm2-135m")
    assert every.models is None and every.allows("anything")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": " "}, "needs a name"),
    ({"name": "bot", "models": []}, "--models is empty"),
    ({"name": "bot", "rate_limit": 0}, "--rate-limit 0"),
    ({"name": "bot", "expires": "soon"}, "neither a duration nor an ISO date"),
    ({"name": "bot", "expires": "0d"}, "is zero"),
    ({"name": "bot", "expires": "2001-02-03"}, "in the past"),
])
def test_bad_options_are_input_errors(store, kwargs, message):
    with pytest.raises(InputError, match=message):
        create_key(store, **kwargs)
    assert list_keys(store) == []


def test_expires_accepts_durations_and_iso_dates():
    now = datetime(2030, 1, 1, 12, 0)
    assert parse_expires("90m", now) == now + timedelta(minutes=90)
    assert parse_expires("12h", now) == now + timedelta(hours=12)
    assert parse_expires("30d", now) == now + timedelta(days=30)
    assert parse_expires("2w", now) == now + timedelta(weeks=2)
    assert parse_expires("2031-01-31", now) == datetime(2031, 1, 31)
    assert parse_expires("2031-01-31T18:00:00+02:00", now) == datetime(2031, 1, 31, 16, 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(rate_limit: int | None, key_id: str = "0123456789") -> ApiKey:
    return ApiKey(id=key_id, name="bot", models=None, rate_limit=rate_limit, created_at=datetime.now())


def test_rate_limiter_allows_the_burst_then_says_how_long_to_wait():
    clock = _Clock()
    limiter, key = RateLimiter(clock), _key(rate_limit=3)  # 3 per minute: one token every 20 s
    assert [limiter.check(key) for _ in range(3)] == [None, None, None]
    assert limiter.check(key) == pytest.approx(20.0)
    clock.now += 10
    assert limiter.check(key) == pytest.approx(10.0)
    clock.now += 10
    assert limiter.check(key) is None and limiter.check(key) > 0
    assert limiter.check(_key(rate_limit=3, key_id="other00000")) is None  # buckets are per key
    assert all(limiter.check(_key(rate_limit=None)) is None for _ in range(100))


def test_rate_limiter_refills_in_real_time():
    limiter, key = RateLimiter(), _key(rate_limit=600)  # 10 per second
    allowed = sum(limiter.check(key) is None for _ in range(650))
    assert 600 <= allowed < 620
    wait = limiter.check(key)
    assert 0 < wait <= 0.1
    threading.Event().wait(wait + 0.05)
    assert limiter.check(key) is None


def test_rate_limiter_is_thread_safe():
    limiter, key = RateLimiter(_Clock()), _key(rate_limit=50)
    results: list[float | None] = []

    def hammer() -> None:
        results.extend(limiter.check(key) for _ in range(20))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is None for r in results) == 50


def test_cli_create_list_revoke_round_trip(cli, store):
    created = cli("keys", "create", "--name", "support-bot", "--models", "support-v2", "--models", "triage",
                  "--expires", "30d", "--rate-limit", "60", "--json")
    assert created.returncode == 0, created.stderr
    result = json.loads(created.stdout)
    assert set(result) == {"key", "id", "name", "models", "expires_at", "rate_limit", "admin", "scopes", "project"}
    assert result["models"] == ["support-v2", "triage"] and result["rate_limit"] == 60 and not result["admin"]
    assert (result["scopes"], result["project"]) == (["inference"], "default")
    assert "cannot be shown again" in created.stderr
    assert authenticate(store, f"Bearer {result['key']}").id == result["id"]

    listed = cli("keys", "list", "--json")
    assert listed.returncode == 0
    (entry,) = json.loads(listed.stdout)["keys"]
    assert entry["id"] == result["id"] and entry["state"] == "active" and entry["last_used_at"]
    assert not {"hash", "salt", "key"} & set(entry) and _secret(result["key"]) not in listed.stdout

    revoked = cli("keys", "revoke", result["id"], "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["state"] == "revoked"
    with pytest.raises(AuthError, match="was revoked"):
        authenticate(store, f"Bearer {result['key']}")

    audit = store.audit_log()
    assert {"keys.create", "keys.revoke"} <= {e["action"] for e in audit}
    assert _secret(result["key"]) not in json.dumps(audit)


def test_cli_human_output_and_mistakes(cli):
    created = cli("keys", "create", "--name", "bot")
    assert created.returncode == 0 and "cannot be shown again" in created.stdout and "tl-" in created.stdout
    assert "every model" in cli("keys", "list").stdout
    unknown = cli("keys", "revoke", "ffffffffff")
    assert unknown.returncode == 2 and "no API key 'ffffffffff'" in unknown.stderr and "Traceback" not in unknown.stderr
    bad = cli("keys", "create", "--name", "bot", "--expires", "tomorrow")
    assert bad.returncode == 2 and "--expires 'tomorrow'" in bad.stderr


TEXT = "Please ask Jonathan Whitmore to reply to jon.whitmore@example.com about the refund."


def _logged(store, texts: str, started: bool) -> dict:
    logger = RequestLogger(store, texts=texts)
    if started:
        with logger:
            logger.log("0123456789", "support-v2", "/v1/chat/completions", 200, 12.5, 20, 7, TEXT, "Done, " + TEXT)
    else:
        logger.log("0123456789", "support-v2", "/v1/chat/completions", 200, 12.5, 20, 7, TEXT, "Done, " + TEXT)
    (row,) = store.request_log(model="support-v2")
    return row


def test_request_log_stores_no_texts_by_default(store):
    row = _logged(store, "none", started=True)
    assert (row["key_id"], row["status"], row["latency_ms"], row["prompt_tokens"], row["completion_tokens"]) == (
        "0123456789", 200, 12.5, 20, 7)
    assert row["request_text"] is None and row["response_text"] is None


def test_request_log_full_keeps_the_texts(store):
    row = _logged(store, "full", started=False)
    assert row["request_text"] == TEXT and row["response_text"] == "Done, " + TEXT


def test_request_log_redacted_removes_personal_data(store):
    row = _logged(store, "redacted", started=True)
    for text in (row["request_text"], row["response_text"]):
        assert "jon.whitmore@example.com" not in text and "Whitmore" not in text
        assert "<EMAIL_ADDRESS>" in text and "<PERSON>" in text and "the refund" in text


def test_request_logger_flushes_everything_on_close_and_filters_by_model(store):
    logger = RequestLogger(store).start()
    for i in range(250):
        logger.log(None, "a" if i % 2 else "b", "/v1/completions", 200, float(i))
    logger.close()
    assert len(store.request_log(limit=1000)) == 250
    newest = store.request_log(limit=3, model="a")
    assert [r["latency_ms"] for r in newest] == [249.0, 247.0, 245.0]
    with pytest.raises(InputError, match="unknown request-log texts setting"):
        RequestLogger(store, texts="some")
