"""The one policy table: action -> the roles allowed to do it, and `authorize()`, the only place it is read.

Every command names its action once (the CLI's resolver in `tunelab.govern.access`); nothing else decides who may
do what, so this table, the docs generated from it (docs/governance.md) and the behaviour cannot disagree.
Workspace-wide actions (users, projects, the audit log) are checked in the WORKSPACE scope, which only a
workspace-wide grant reaches.
"""

from __future__ import annotations

from tunelab.errors import PermissionDeniedError
from tunelab.govern.principal import WORKSPACE, Principal

ROLES = ("admin", "engineer", "annotator", "reviewer", "viewer")

_READ = frozenset({"admin", "engineer", "annotator", "reviewer", "viewer"})
_BUILD = frozenset({"admin", "engineer"})
_ADMIN = frozenset({"admin"})

# action -> (roles allowed, what it covers). Order is the order of docs/governance.md.
POLICY: dict[str, tuple[frozenset[str], str]] = {
    "data.read": (_READ, "list and show datasets (shown sample rows are audited as `data.show`)"),
    "data.import": (_BUILD, "import raw files as a dataset"),
    "data.prepare": (_BUILD, "prepare a new dataset version"),
    "data.export": (_BUILD, "export a split's rows (sensitive: audited)"),
    "data.delete": (_BUILD, "delete a dataset version"),
    "data.label": (frozenset({"admin", "engineer", "annotator"}), "label and review examples"),
    "runs.read": (_READ, "list runs, show a run and its log"),
    "train.run": (_BUILD, "train, resume or tune"),
    "train.cancel": (_BUILD, "cancel a run"),
    "job.submit": (_BUILD, "queue a background job (`tunelab train --submit`)"),
    "job.read": (_READ, "list and show the project's jobs"),
    "job.cancel": (_BUILD, "cancel a queued or running job"),
    "worker.run": (_BUILD, "run `tunelab worker`: the project's jobs, each as the person who queued it"),
    "eval.run": (_BUILD, "evaluate a model"),
    "eval.read": (_READ, "read evaluation reports"),
    "model.read": (_READ, "list and show models and base models"),
    "model.merge": (_BUILD, "merge an adapter into its base"),
    "model.export": (_BUILD, "export merged weights or GGUF"),
    "model.serve": (_BUILD, "serve models over the API; load and unload them on a running server"),
    "model.infer": (_READ, "call the served models of the project over the API (an inference key is a viewer)"),
    "model.promote": (_BUILD, "move a model to the next registry stage"),
    "model.approve": (frozenset({"admin", "reviewer"}), "approve a model for production (never one's own)"),
    "keys.read": (_BUILD, "list API keys (never their secrets)"),
    "keys.create": (_BUILD, "create an API key"),
    "keys.revoke": (_BUILD, "revoke an API key"),
    "grants.read": (frozenset({"admin", "reviewer"}), "list who holds which role"),
    "grants.manage": (_ADMIN, "give or take a role in a project"),
    "users.manage": (_ADMIN, "add, list and disable users and service accounts (workspace)"),
    "projects.manage": (_ADMIN, "create projects (workspace)"),
    "audit.read": (frozenset({"admin", "reviewer"}), "list and verify the audit log"),
}

WORKSPACE_ACTIONS = frozenset({"users.manage", "projects.manage"})


def allowed(role: str | None, action: str) -> bool:
    """Whether `role` may do `action`; an unknown action is a bug in tunelab, not a user mistake."""
    if action not in POLICY:
        raise KeyError(f"action {action!r} is not in the policy table")
    return role is not None and role in POLICY[action][0]


def authorize(principal: Principal, action: str, project: str) -> None:
    """Return if `principal` may do `action` in `project`, else raise PermissionDeniedError naming both roles.

    Workspace actions are judged in the WORKSPACE scope whatever project the command runs in.
    """
    scope = WORKSPACE if action in WORKSPACE_ACTIONS else project
    role = principal.role_in(scope)
    if allowed(role, action):
        return
    needs = " or ".join(r for r in ROLES if r in POLICY[action][0])
    where = "the workspace" if scope == WORKSPACE else f"project {scope!r}"
    has = f"is {role} in {where}" if role else f"has no role in {where}"
    hint = ("ask a workspace admin for a workspace-wide grant" if scope == WORKSPACE
            else f"ask an admin: tunelab grants add {principal.name} {scope} ROLE")
    raise PermissionDeniedError(f"{principal.name} may not {action}: it needs {needs}, and {principal.name} {has}",
                                hint)


def markdown_table() -> str:
    """The policy as the Markdown table of docs/governance.md (a test keeps the doc equal to it)."""
    lines = ["| action | " + " | ".join(ROLES) + " | what |", "|---|" + "---|" * len(ROLES) + "---|"]
    for action, (roles, what) in POLICY.items():
        marks = " | ".join("yes" if r in roles else "-" for r in ROLES)
        lines.append(f"| `{action}` | {marks} | {what} |")
    return "\n".join(lines)
