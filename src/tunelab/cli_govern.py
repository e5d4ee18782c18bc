"""`tunelab init|users|projects|grants|audit`: parse, resolve who acts (`open_as`), call `tunelab.govern`, print."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tunelab.cli_output import JsonFlag, emit
from tunelab.errors import InputError
from tunelab.govern import users as service
from tunelab.govern.access import open_as, reader_scope

users_app = typer.Typer(help="Users and service accounts: add, list, disable.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects (tenants): create, list.", no_args_is_help=True)
grants_app = typer.Typer(help="Roles of users in projects: add, remove, list.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log: list, verify.", no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                                                      "stdin (else it is prompted for).")]
UserArg = Annotated[str, typer.Argument(help="User or service account name.")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InputError("no password given", "pass --password-stdin and write it on stdin")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


def init_command(admin: Annotated[str, typer.Option("--admin", help="Name of the first admin.")],
                 password_stdin: PasswordStdin = False, as_json: JsonFlag = False) -> None:
    """Create the first admin: from then on every command needs TUNELAB_USER and TUNELAB_PASSWORD (or a key).

    Example: tunelab init --admin alice --password-stdin < alice-password.txt
    """
    user = service.init_workspace(open_as("users.manage", admin), admin, _password(password_stdin))
    emit(user, as_json, f"created admin {user['name']}; commands now act as TUNELAB_USER (password in "
                        "TUNELAB_PASSWORD) or TUNELAB_API_KEY")


@users_app.command("add")
def users_add(name: UserArg, service_account: Annotated[bool, typer.Option(
                  "--service", help="A service account: no password, it logs in with a key (keys create --user).")]
              = False, password_stdin: PasswordStdin = False, as_json: JsonFlag = False) -> None:
    """Add a user (with a password) or a service account.

    Example: tunelab users add bob --password-stdin < bob-password.txt
    """
    store = open_as("users.manage", name)
    user = service.add_user(store, name, None if service_account else _password(password_stdin), service_account)
    emit(user, as_json, f"added {user['kind']} {user['name']} ({user['id']}); give it a role with `tunelab grants add`")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """List users and service accounts with their grants (never a password hash).

    Example: tunelab users list --json
    """
    items = service.list_users(open_as("users.manage"))
    lines = [f"{u['name']:<24} {u['kind']:<8} {'disabled' if u['disabled_at'] else 'active':<9} "
             + ", ".join(f"{p}={r}" for p, r in u["grants"].items()) for u in items]
    emit({"users": items}, as_json, "\n".join(lines) or "no users: the workspace is single-user (`tunelab init`)")


@users_app.command("disable")
def users_disable(name: UserArg, as_json: JsonFlag = False) -> None:
    """Disable a user: its password and keys are refused from the next command on.

    Example: tunelab users disable bob
    """
    user = service.disable_user(open_as("users.manage", name), name)
    emit(user, as_json, f"disabled {user['name']}")


@projects_app.command("create")
def projects_create(name: Annotated[str, typer.Argument(help="Project name.")], as_json: JsonFlag = False) -> None:
    """Create a project.

    Example: tunelab projects create support
    """
    result = service.create_project(open_as("projects.manage", name), name)
    emit(result, as_json, f"created project {name}")


@projects_app.command("list")
def projects_list(as_json: JsonFlag = False) -> None:
    """List projects.

    Example: tunelab projects list
    """
    items = service.projects_seen(open_as("grants.read"))
    emit({"projects": items}, as_json, "\n".join(items))


ProjectArg = Annotated[str, typer.Argument(help="Project name, or * for every project and the workspace.")]


@grants_app.command("add")
def grants_add(user: UserArg, project: ProjectArg,
               role: Annotated[str, typer.Argument(help="admin, engineer, annotator, reviewer or viewer.")],
               as_json: JsonFlag = False) -> None:
    """Give a user a role in a project (replacing the role it had there).

    Example: tunelab grants add bob support engineer
    """
    result = service.grant(open_as("grants.manage", user, project=project), user, project, role)
    emit(result, as_json, f"{user} is {role} in {project}")


@grants_app.command("remove")
def grants_remove(user: UserArg, project: ProjectArg, as_json: JsonFlag = False) -> None:
    """Take a user's role in a project away.

    Example: tunelab grants remove bob support
    """
    result = service.revoke_grant(open_as("grants.manage", user, project=project), user, project)
    emit(result, as_json, f"{user} has no role in {project} any more")


@grants_app.command("list")
def grants_list(as_json: JsonFlag = False) -> None:
    """List every grant: user, project, role.

    Example: tunelab grants list --json
    """
    items = service.list_grants(open_as("grants.read"))
    emit({"grants": items}, as_json, "\n".join(f"{g['user']:<24} {g['project']:<20} {g['role']}" for g in items))


@audit_app.command("verify")
def audit_verify(as_json: JsonFlag = False) -> None:
    """Check the hash chain: exit 0 when intact, 1 naming the first edited, deleted or reordered row.

    Example: tunelab audit verify
    """
    from tunelab.store import audit

    check = audit.verify(open_as("audit.read").engine)
    emit(check.to_json(), as_json, f"intact: {check.rows:,} rows" if check.intact
         else f"BROKEN at row {check.first_bad_id}: {check.problem}")
    if not check.intact:
        raise SystemExit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is not an ISO date or time", "e.g. --since 2026-12-01") from None
    return when if when.tzinfo is None else when.astimezone(UTC).replace(tzinfo=None)  # the store keeps naive UTC


@audit_app.command("list")
def audit_list(
    since: Annotated[str | None, typer.Option("--since", help="Rows at or after this ISO time (UTC).")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Rows of this actor.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="This action, or a prefix ending in a dot "
                                                                "(data.).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the newest N rows.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List audit rows, oldest first.

    Example: tunelab audit list --since 2026-12-01 --actor bob --json
    """
    from tunelab.store import audit

    store = open_as("audit.read")
    rows = audit.entries(store.engine, _since(since), actor, action, limit, project=reader_scope(store))
    emit({"entries": rows}, as_json, "\n".join(_row_text(r) for r in rows) or "no audit rows")


def _row_text(row: dict[str, Any]) -> str:
    return (f"{row['id']:>7} {row['at'][:19]} {row['actor']:<16} {row['project']:<12} {row['outcome']:<7} "
            f"{row['action']:<16} {row['target']} {row['detail'] or ''}")


ModelArg = Annotated[str, typer.Argument(help="Model id, id prefix or name.")]


def models_promote(model: ModelArg, to: Annotated[str, typer.Option("--to", help="staging, production (files a "
                                                                       "request a reviewer approves) or retired.")],
                   as_json: JsonFlag = False) -> None:
    """Move a model to the next registry stage: candidate -> staging -> production -> retired.

    Example: tunelab models promote m-1a2b3c4d5e --to production
    """
    from tunelab.govern.registry import promote

    result = promote(open_as("model.promote", model), model, to)
    emit(result, as_json, f"{result['model']}: asked for production on evaluation {result['evaluation']}; another "
                          f"reviewer approves with `tunelab models approve {result['model']}`" if result["pending"]
         else f"{result['model']} is {result['stage']}")


def models_approve(model: ModelArg, as_json: JsonFlag = False) -> None:
    """Approve a model's pending production request (a reviewer who did not ask for it); it goes to production.

    Example: tunelab models approve m-1a2b3c4d5e
    """
    from tunelab.govern.registry import approve

    result = approve(open_as("model.approve", model), model)
    emit(result, as_json, f"{result['model']} is in production (evaluation {result['evaluation']}, asked by "
                          f"{result['requested_by']}, approved by {result['approved_by']})")


def register_registry(models_app: typer.Typer) -> None:
    """Add `models promote|approve` to the `tunelab models` group."""
    models_app.command("promote")(models_promote)
    models_app.command("approve")(models_approve)


def register(app: typer.Typer) -> None:
    """Add the governance commands to the `tunelab` app."""
    app.command("init")(init_command)
    app.add_typer(users_app, name="users")
    app.add_typer(projects_app, name="projects")
    app.add_typer(grants_app, name="grants")
    app.add_typer(audit_app, name="audit")
