"""The policy table, pair by pair: every (role, action) is allowed or refused exactly as POLICY says."""

from __future__ import annotations

import itertools

import pytest

from tunelab.errors import PermissionDeniedError, TunelabError
from tunelab.govern.policy import POLICY, ROLES, WORKSPACE_ACTIONS, authorize
from tunelab.govern.principal import LOCAL_ADMIN, WORKSPACE, make_principal

PAIRS = list(itertools.product(ROLES, POLICY))


def _who(role, project):
    return make_principal("u-1", "carol", "user", {project: role})


@pytest.mark.parametrize(("role", "action"), PAIRS)
def test_a_project_role_allows_exactly_what_the_table_says(role, action):
    expected = role in POLICY[action][0] and action not in WORKSPACE_ACTIONS  # a project grant never reaches those
    if expected:
        authorize(_who(role, "support"), action, "support")
    else:
        with pytest.raises(PermissionDeniedError, match=f"carol may not {action}: it needs "):
            authorize(_who(role, "support"), action, "support")


@pytest.mark.parametrize(("role", "action"), PAIRS)
def test_a_workspace_role_applies_in_every_project(role, action):
    for project in ("support", "billing"):
        if role in POLICY[action][0]:
            authorize(_who(role, WORKSPACE), action, project)
        else:
            with pytest.raises(PermissionDeniedError, match=f"carol is {role} in "):
                authorize(_who(role, WORKSPACE), action, project)


@pytest.mark.parametrize(("role", "action"), PAIRS)
def test_a_role_in_one_project_gives_nothing_in_another(role, action):
    with pytest.raises(PermissionDeniedError, match="carol has no role in "):
        authorize(_who(role, "support"), action, "billing")


def test_the_refusal_names_the_action_the_roles_it_needs_and_the_callers_role():
    with pytest.raises(PermissionDeniedError) as refused:
        authorize(_who("viewer", "support"), "data.delete", "support")
    assert refused.value.message == "carol may not data.delete: it needs admin or engineer, and carol is viewer in " \
                                    "project 'support'"
    assert refused.value.status == 403 and isinstance(refused.value, TunelabError)
    assert "tunelab grants add carol support ROLE" in refused.value.hint


def test_the_local_admin_may_do_everything_everywhere():
    for action in POLICY:
        authorize(LOCAL_ADMIN, action, "default")


def test_an_action_missing_from_the_table_is_a_bug_not_a_refusal():
    with pytest.raises(KeyError, match="not in the policy table"):
        authorize(LOCAL_ADMIN, "data.frobnicate", "default")


def test_every_role_is_somewhere_and_admin_everywhere():
    assert all("admin" in roles for roles, _ in POLICY.values())
    assert {r for roles, _ in POLICY.values() for r in roles} == set(ROLES)
