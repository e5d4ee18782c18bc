"""Registry stages with four-eyes approval: candidate -> staging -> production -> retired.

Staging and retiring are one engineer's decision. Production needs two people: one asks (`promote --to
production`, which pins the newest gated evaluation, and it must have passed), and another with the reviewer role
approves (never the one who asked); the approval records the evaluation the reviewer saw. `tunelab serve` serves
only production models unless told `--allow-unapproved`, which is audited.
"""

from __future__ import annotations

from typing import Any

from tunelab.errors import ConflictError, InputError, PermissionDeniedError
from tunelab.govern import cards
from tunelab.store import Store
from tunelab.store import approvals as table

STAGES = ("candidate", "staging", "production", "retired", "quarantined")  # quarantined: only an erasure sets it
_FROM = {"staging": ("candidate",), "production": ("staging",),
         "retired": ("candidate", "staging", "production", "quarantined")}


def passing_evaluation(store: Store, model: dict[str, Any]) -> str:
    """The newest evaluation of the model that ran a gate; it must have passed (a newer failure outweighs an older
    pass)."""
    for row in cards.tuned_evaluations(store, model["id"]):
        gate = (row["result"] or {}).get("gate")
        if gate is None:
            continue
        if not gate["passed"]:
            raise ConflictError(f"the newest gated evaluation of {model['id']} ({row['evaluation_id']}) failed its "
                                "gate", "improve the model, or evaluate it again")
        return row["evaluation_id"]
    raise ConflictError(f"{model['id']} has no evaluation with a passing gate",
                        f"run `tunelab eval {model['id']} --dataset DATASET --min-improvement METRIC=DELTA`")


def promote(store: Store, ref: str, to: str) -> dict[str, Any]:
    """Move a model one stage on; `production` only files the request a reviewer approves."""
    if to not in _FROM:
        raise InputError(f"--to {to!r} is not a stage a model can be moved to", "use staging, production or retired")
    model = store.get_model(ref)
    stage = model["stage"] or "candidate"
    if stage not in _FROM[to]:
        raise ConflictError(f"{model['id']} is {stage}: it can go to {to} only from {' or '.join(_FROM[to])}",
                            "the stages run candidate -> staging -> production -> retired")
    if to != "production":
        store.set_stage(model["id"], to)
        store.audit("model.promote", model["id"], {"from": stage, "to": to})
        cards.refresh(store, model["id"])
        return {"model": model["id"], "stage": to, "pending": False}
    evaluation = passing_evaluation(store, model)
    table.add_request(store, model["id"], evaluation, store.principal.name, store.principal.id)
    store.audit("model.promote", model["id"], {"from": stage, "to": to, "evaluation": evaluation})
    return {"model": model["id"], "stage": stage, "pending": True, "evaluation": evaluation}


def approve(store: Store, ref: str) -> dict[str, Any]:
    """Approve the pending production request of a model: by someone else than the requester, gate still passing."""
    model = store.get_model(ref)
    request = table.pending(store, model["id"])
    if request is None:
        raise ConflictError(f"nobody asked to put {model['id']} in production",
                            f"an engineer asks first: `tunelab models promote {model['id']} --to production`")
    if request["requester_id"] == store.principal.id:
        store.audit("model.approve", model["id"], {"reason": "self-approval"}, outcome="denied")
        raise PermissionDeniedError(f"{store.principal.name} asked for {model['id']} to go to production and cannot "
                                    "also approve it", "another reviewer must approve it")
    evaluation = passing_evaluation(store, model)
    if evaluation != request["evaluation_id"]:
        raise ConflictError(f"{model['id']} was evaluated again since the request ({evaluation})",
                            "ask again: `tunelab models promote MODEL --to production`")
    table.approve(store, request["id"], store.principal.name)
    store.set_stage(model["id"], "production")
    store.audit("model.approve", model["id"], {"evaluation": evaluation, "requested_by": request["requested_by"]})
    cards.refresh(store, model["id"])
    return {"model": model["id"], "stage": "production", "evaluation": evaluation,
            "requested_by": request["requested_by"], "approved_by": store.principal.name}


def check_servable(store: Store, model: dict[str, Any], allow_unapproved: bool) -> None:
    """Refuse a registered model that is not in production, unless allowed; an allowed one is audited."""
    stage = model["stage"] or "candidate"
    refusal = serving_refusal(model["id"], stage, allow_unapproved)
    if refusal is not None:
        raise refusal
    if stage == "production":
        return
    store.audit("serve.unapproved", model["id"], {"stage": stage})


def serving_refusal(model_id: str, stage: str, allow_unapproved: bool) -> ConflictError | None:
    """Why a model in `stage` may not be served, or None: the one rule for loading a model and for the running
    server's watch, which withdraws a model whose stage changed under it."""
    if stage == "quarantined":  # no flag serves it: the data it learned from was erased
        return ConflictError(f"model {model_id} is quarantined: data it was trained on was erased, so it is never "
                             "served", f"train it again on the new data (`tunelab models card {model_id}` names "
                             "the erasure report); --allow-unapproved does not apply")
    if stage == "production" or allow_unapproved:
        return None
    return ConflictError(f"model {model_id} is {stage}, not approved for production",
                         "promote and approve it (docs/governance.md), or serve with --allow-unapproved (audited)")
