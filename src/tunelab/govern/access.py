"""The one place the CLI learns who is acting and whether they may: `open_as(action)`.

While the workspace has no users, the OS user is the local admin (today's single-user commands keep working without
a login). Once `tunelab init` made the first admin, the caller names themselves with TUNELAB_USER and
TUNELAB_PASSWORD, or TUNELAB_API_KEY (a key created with `--user`, with the `manage` scope). `tunelab --project NAME`
or TUNELAB_PROJECT picks the project (default `default`); the store then sees that project's objects only. A failed
login and a refused action are both written to the audit log with outcome `denied`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

from tunelab.errors import AuthError, NotFoundError, PermissionDeniedError
from tunelab.govern import users
from tunelab.govern.credentials import login_with_key
from tunelab.govern.policy import POLICY, authorize
from tunelab.govern.principal import DEFAULT_PROJECT, LOCAL_ADMIN, WORKSPACE, Principal
from tunelab.store import Store, open_store
from tunelab.store import users as table


def resolve(store: Store, env: Mapping[str, str]) -> Principal:
    """The principal the environment names; AuthError when a login is needed and missing or wrong."""
    if not table.count_users(store):
        return LOCAL_ADMIN
    if env.get("TUNELAB_API_KEY"):
        return login_with_key(store, env["TUNELAB_API_KEY"])
    if not env.get("TUNELAB_USER"):
        raise AuthError("this workspace has users: say who you are",
                        "set TUNELAB_USER and TUNELAB_PASSWORD, or TUNELAB_API_KEY")
    return users.login(store, env["TUNELAB_USER"], env.get("TUNELAB_PASSWORD"))


_chosen: dict[str, str | None] = {"project": None}


def choose_project(project: str | None) -> None:
    """The project `tunelab --project NAME` named for this command (None: TUNELAB_PROJECT, else `default`)."""
    _chosen["project"] = project


def _project(store: Store, principal: Principal, project: str) -> str:
    """The project, if it exists. Only a workspace-wide principal learns that a project does not exist: anyone else
    is refused in a missing project exactly as in a project they hold no role in, so names do not leak."""
    known = users.list_projects(store)
    if project == WORKSPACE or project in known or principal.role_in(WORKSPACE) is None:
        return project
    raise NotFoundError(f"no project {project!r} (--project / TUNELAB_PROJECT)", f"projects: {', '.join(known)}")


def open_as(action: str, target: str = "-", project: str | None = None,
            env: Mapping[str, str] | None = None) -> Store:
    """A store acting for the caller, who may do `action`; its audit rows name them and the project.

    `project` is where the action is judged (a grant's own project); by default `--project`, TUNELAB_PROJECT, the
    project of the API key logged in with, or `default`.
    """
    env = os.environ if env is None else env
    store = open_store()
    claimed = env.get("TUNELAB_USER") or ("api-key" if env.get("TUNELAB_API_KEY") else "anonymous")
    named = project or _chosen["project"] or env.get("TUNELAB_PROJECT")
    store.act_as(claimed, named or DEFAULT_PROJECT)
    try:
        principal = resolve(store, env)
    except AuthError:
        store.audit("auth.login", claimed, {"for": action}, outcome="denied")
        raise
    store.act_as(principal.name, _project(store, principal, named or principal.project or DEFAULT_PROJECT))
    store.principal = principal
    check(store, action, target)
    return store


def reader_scope(store: Store) -> str | None:
    """The one project a reader of workspace records (the audit log, grants, projects) sees, or None when its role
    is workspace-wide: a project's reviewer reads its own project's trail, not another tenant's."""
    return None if store.principal.role_in(WORKSPACE) else store.project


def check(store: Store, action: str, target: str = "-", detail: Mapping[str, object] | None = None) -> None:
    """Authorize the store's principal for `action` in its project; a refusal is audited, then raised."""
    try:
        authorize(store.principal, action, store.project)
    except PermissionDeniedError as exc:
        refuse(store, action, target, exc, detail)


def refuse(store: Store, action: str, target: str, exc: PermissionDeniedError,
           detail: Mapping[str, object] | None = None) -> NoReturn:
    """Write the denied row every refusal leaves (the roles the action needs, why, and `detail`), then raise."""
    store.audit(action, target, {"roles_needed": sorted(POLICY[action][0]), "reason": exc.message, **(detail or {})},
                outcome="denied")
    raise exc
