"""Principals from credentials other than a password: an API key (the CLI and the server) and the user name a trusted
proxy puts in a header (the server).

A key acts in its own project only, whatever its owner may do elsewhere: a leaked key exposes one tenant, never the
workspace. A key that belongs to no user (an application's key) acts as the least role its scopes need, so the one
policy table judges it like anyone else: `inference` is a viewer's right, `manage` (loading models) an engineer's.
"""

from __future__ import annotations

from tunelab.errors import AuthError
from tunelab.govern.keys import ApiKey, authenticate
from tunelab.govern.principal import Principal, make_principal
from tunelab.govern.users import active
from tunelab.store import Store
from tunelab.store import users as table

KEY_ROLES = {"inference": "viewer", "manage": "engineer"}  # a user-less key's role: that of its widest scope


def key_principal(store: Store, key: ApiKey) -> Principal:
    """Who `key` acts as, with a role in the key's project alone: its user's role there, or KEY_ROLES for a key of
    no user. A disabled (or deleted) user's keys are refused."""
    if key.user_id is None:
        role = KEY_ROLES["manage" if "manage" in key.scopes else "inference"]
        return make_principal(f"key:{key.id}", f"tl-{key.id}", "key", {key.project: role}, project=key.project)
    user = table.find_user_by_id(store, key.user_id)
    if user is None:
        raise AuthError(f"API key tl-{key.id} belongs to a user who no longer exists", "ask for a new key")
    owner = active(store, user)
    role = owner.role_in(key.project)
    return make_principal(owner.id, owner.name, owner.kind, {key.project: role} if role else {}, project=key.project)


def login_with_key(store: Store, token: str) -> Principal:
    """The CLI's principal for TUNELAB_API_KEY: a user's key with the `manage` scope (an inference key owns no one)."""
    key = authenticate(store, f"Bearer {token.strip()}")
    if key.user_id is None:
        raise AuthError(f"API key tl-{key.id} belongs to no user: it is for `tunelab serve` only",
                        "create a user's key with `tunelab keys create --name NAME --user USER`")
    if "manage" not in key.scopes:
        raise AuthError(f"API key tl-{key.id} has only the {', '.join(key.scopes)} scope: it cannot log in to the "
                        "CLI", "create a key with `--scope manage`")
    return key_principal(store, key)


def proxy_principal(store: Store, name: str) -> Principal:
    """The user a trusted proxy vouches for (it did the login); unknown and disabled users are refused."""
    user = table.find_user(store, name.strip())
    if user is None:
        raise AuthError(f"the proxy names user {name.strip()!r}, who is not a tunelab user",
                        "add the user with `tunelab users add` and give it a role with `tunelab grants add`")
    return active(store, user)
