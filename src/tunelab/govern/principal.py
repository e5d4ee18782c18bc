"""Who is acting: a user, a service account, or the local admin of a workspace that has no users yet.

A `Principal` is frozen and carries its grants (project -> role), so a check never goes back to the database
half-way through a command: what was true when the command started is what it is judged by.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from tunelab.store.store import DEFAULT_PROJECT

__all__ = ["DEFAULT_PROJECT", "LOCAL_ADMIN", "WORKSPACE", "Principal", "local_admin", "make_principal"]

WORKSPACE = "*"  # the grant scope of workspace-wide roles: users, projects, the audit log, every project

Kind = Literal["user", "service", "local", "key"]


@dataclass(frozen=True)
class Principal:
    """An identity and its roles: `grants` maps a project (or WORKSPACE) to one role. `project` is the one project a
    credential is bound to (an API key's), the default project of what it does; None for a password login."""

    id: str
    name: str
    kind: Kind
    grants: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    project: str | None = None

    def role_in(self, project: str) -> str | None:
        """The role that applies in `project`: the project's own grant, else a workspace-wide one."""
        return self.grants.get(project) or self.grants.get(WORKSPACE)


def make_principal(id: str, name: str, kind: Kind, grants: dict[str, str], project: str | None = None) -> Principal:
    """A principal whose grants cannot be changed after the fact (a read-only view of a copy)."""
    return Principal(id=id, name=name, kind=kind, grants=MappingProxyType(dict(grants)), project=project)


def local_admin() -> Principal:
    """The OS user, admin of everything: what every command acts as until `tunelab init` creates the first admin,
    so a single-user workspace keeps working without a login."""
    name = getpass.getuser()
    return make_principal(id=f"local:{name}", name=name, kind="local", grants={WORKSPACE: "admin"})


LOCAL_ADMIN = local_admin()
