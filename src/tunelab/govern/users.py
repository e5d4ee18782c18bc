"""Users, service accounts, projects and grants: the service behind `tunelab init|users|projects|grants`.

Passwords are hashed with argon2id (argon2-cffi's defaults: slow on purpose, unlike API key secrets, because people
pick guessable passwords). Every change is audited without the password. Who may call these is decided before, by
`tunelab.govern.access` and the policy table; this module only checks what the values themselves must satisfy.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tunelab.errors import AuthError, ConflictError, InputError, NotFoundError
from tunelab.govern.policy import ROLES
from tunelab.govern.principal import WORKSPACE, Principal, make_principal
from tunelab.store import Store
from tunelab.store import users as table

MIN_PASSWORD = 8
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
_hasher = PasswordHasher()


def _check_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(f"{what} name {name!r} is not valid",
                         "use letters, digits and . _ @ - (at most 100 characters, starting with a letter or digit)")
    return name


def _hash_password(password: str | None) -> str:
    if password is None or len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters", "pass it on stdin with "
                                                                                 "--password-stdin")
    return _hasher.hash(password)


def principal_of(store: Store, user: dict[str, Any]) -> Principal:
    """The principal of a stored user, with the grants it holds now."""
    return make_principal(user["id"], user["name"], user["kind"], table.grants_of(store, user["id"]))


def _user(store: Store, name: str) -> dict[str, Any]:
    user = table.find_user(store, name)
    if user is None:
        known = [u["name"] for u in table.list_users(store)]
        raise NotFoundError(f"no user {name!r}", f"users: {', '.join(known)}" if known else "add one with "
                                                                                           "`tunelab users add`")
    return user


def add_user(store: Store, name: str, password: str | None, service: bool = False) -> dict[str, Any]:
    """A person (with a password) or a service account (`service`: no password, API keys only)."""
    _check_name(name, "user")
    if table.find_user(store, name) is not None:
        raise ConflictError(f"user {name!r} exists", "pick another name, or `tunelab users list`")
    password_hash = None if service else _hash_password(password)
    user = table.add_user(store, f"u-{secrets.token_hex(5)}", name, "service" if service else "user", password_hash)
    store.audit("users.add", name, {"kind": user["kind"]})
    return public(user)


def init_workspace(store: Store, admin: str, password: str | None) -> dict[str, Any]:
    """Create the first user, admin of the whole workspace; from then on every command needs a login."""
    if table.count_users(store):
        raise ConflictError("this workspace is already initialised", "add users with `tunelab users add`")
    user = add_user(store, admin, password)
    grant(store, admin, WORKSPACE, "admin")
    return user


def list_users(store: Store) -> list[dict[str, Any]]:
    return [{**public(u), "grants": table.grants_of(store, u["id"])} for u in table.list_users(store)]


def disable_user(store: Store, name: str) -> dict[str, Any]:
    """Refuse the user's password and keys from now on; the row and its audit trail stay."""
    user = _user(store, name)
    table.disable_user(store, user["id"])
    store.audit("users.disable", name, {})
    return public(table.find_user(store, name))


def public(user: dict[str, Any]) -> dict[str, Any]:
    """A user as shown: never the password hash."""
    times = {k: user[k].isoformat() if user[k] else None for k in ("created_at", "disabled_at")}
    return {"id": user["id"], "name": user["name"], "kind": user["kind"], **times}


def create_project(store: Store, name: str) -> dict[str, Any]:
    _check_name(name, "project")
    if name in table.list_projects(store):
        raise ConflictError(f"project {name!r} exists", "`tunelab projects list` shows them")
    table.add_project(store, name)
    store.audit("projects.create", name, {})
    return {"project": name}


def list_projects(store: Store) -> list[str]:
    return table.list_projects(store)


def projects_seen(store: Store) -> list[str]:
    """The projects the store's principal may know of: every one for a workspace-wide role, else those it holds a
    role in."""
    return [p for p in table.list_projects(store) if store.principal.role_in(WORKSPACE) or p in store.principal.grants]


def _project(store: Store, project: str) -> str:
    if project != WORKSPACE and project not in table.list_projects(store):
        raise NotFoundError(f"no project {project!r}", f"projects: {', '.join(table.list_projects(store))}; "
                                                       f"`{WORKSPACE}` means every project")
    return project


def grant(store: Store, name: str, project: str, role: str) -> dict[str, Any]:
    """Give `name` the `role` in `project` (WORKSPACE: every project and the workspace), replacing any other."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", f"roles: {', '.join(ROLES)}")
    user = _user(store, name)
    table.set_grant(store, user["id"], _project(store, project), role)
    store.audit("grants.add", name, {"grant_project": project, "role": role})
    return {"user": name, "project": project, "role": role}


def revoke_grant(store: Store, name: str, project: str) -> dict[str, Any]:
    user = _user(store, name)
    if not table.remove_grant(store, user["id"], project):
        raise NotFoundError(f"{name} has no role in {project!r}", "`tunelab grants list` shows the grants")
    store.audit("grants.remove", name, {"grant_project": project})
    return {"user": name, "project": project, "role": None}


def list_grants(store: Store) -> list[dict[str, Any]]:
    """Every grant for a workspace-wide reader; else the grants of the store's project (who else works there)."""
    from tunelab.govern.access import reader_scope

    scope = reader_scope(store)
    return [g for g in table.list_grants(store) if scope is None or g["project"] == scope]


def key_owner(store: Store, name: str) -> str:
    """The id of the user a new API key will log in as: oneself, or anyone for a holder of users.manage. The user
    needs a role in the key's project, where alone the key acts: without one it could do nothing."""
    from tunelab.govern.access import check

    user = _user(store, name)
    if store.principal is None or user["id"] != store.principal.id:
        check(store, "users.manage", name)
    if principal_of(store, user).role_in(store.project) is None:
        raise ConflictError(f"{name} has no role in project {store.project!r}, the only one a key made here acts in",
                            f"give one first (tunelab grants add {name} {store.project} ROLE), or make the key in "
                            f"a project of theirs (tunelab --project NAME keys create ...)")
    return user["id"]


def login(store: Store, name: str, password: str | None) -> Principal:
    """The principal behind a name and password; the same message for an unknown user and a wrong password."""
    user = table.find_user(store, name)
    wrong = AuthError(f"wrong user name or password for {name!r}", "check TUNELAB_USER and TUNELAB_PASSWORD")
    if user is None or user["password_hash"] is None:
        raise wrong
    try:
        _hasher.verify(user["password_hash"], password or "")
    except (VerificationError, InvalidHashError):
        raise wrong from None
    return active(store, user)


def active(store: Store, user: dict[str, Any]) -> Principal:
    """The principal of a user who may log in now: a disabled user is refused whatever the credential."""
    if user["disabled_at"] is not None:
        raise AuthError(f"user {user['name']!r} is disabled", "ask an admin")
    return principal_of(store, user)
