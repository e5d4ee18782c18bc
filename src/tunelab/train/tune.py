"""`tunelab tune`: hyperparameter search with optuna, one ordinary training run per trial.

The config is a train.yaml with a `search:` section: each key is a TrainConfig key (dotted for sections, e.g.
`lora.r`), each value a range (`low`, `high`, optional `log`) or a list of `choices`:

    search:
      learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}
      lora.r: {choices: [8, 16, 32]}
      batch_size: {choices: [8, 16]}

A range on an integer key samples integers, on a float key floats. Every trial is a `tunelab train` run (named
`<study>-t<number>`) that registers its model; the objective is the run's best validation loss, which each evaluation
reports to a MedianPruner that stops trials worse than the median of earlier trials at the same step (those runs end
in state "pruned"). The sampler is TPE, seeded with the config's `seed` (plus the number of trials the study already
has, so a second worker joining the study does not repeat the first one's trials).

The study lives in the workspace's own database (SQLite, or the PostgreSQL of TUNELAB_DATABASE_URL), named by the
config's `name` or `tune-<dataset id>-<task>`; running `tunelab tune` again, or on several machines sharing that
database, adds trials to the same study. `--trials N` is the number of trials this process runs.

The result is the best trial of the whole study: its parameters, validation loss, run and model. Every trial's model
is registered as a "candidate" (the registry's default stage); the best one is the one to evaluate and promote.
"""

from __future__ import annotations

import contextlib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from tunelab.errors import InputError, NotFoundError, TunelabError
from tunelab.progress import say
from tunelab.store import Store
from tunelab.store.store import DEFAULT_PROJECT, sqlalchemy_url
from tunelab.train.config import SearchRange, TrainConfig, resolve

# the study compares runs on one dataset and task; the rest is bookkeeping that does not change a result
NOT_TUNABLE = ("dataset", "task", "name", "search", "trials", "threads", "checkpoint_every", "keep_checkpoints",
               "logging.tensorboard", "logging.mlflow")


def _leaves(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> annotation of every leaf field."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(_leaves(annotation, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = annotation
    return out


def tunable_keys() -> list[str]:
    return [k for k in _leaves(TrainConfig) if k not in NOT_TUNABLE]


def _numeric(annotation: Any) -> str | None:
    """"int", "float" or None (not a number) for a field annotation."""
    args = set(typing.get_args(annotation)) if isinstance(annotation, types.UnionType) or \
        typing.get_origin(annotation) is typing.Union else {annotation}
    args.discard(type(None))
    if args == {int}:
        return "int"
    if args and args <= {int, float}:
        return "float"
    return None


def _with(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of config data with a dotted key set."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return data


def _base_data(cfg: TrainConfig) -> dict[str, Any]:
    """The config given, as data, without the tune-only keys: each trial is a plain `tunelab train` config."""
    data = cfg.model_dump(mode="json", exclude_unset=True)
    for key in ("name", "search", "trials"):
        data.pop(key, None)
    return data


def check_search(cfg: TrainConfig) -> dict[str, str]:
    """Validate the search space against the TrainConfig schema; key -> "int", "float" or "choices".

    Every problem is reported at once: unknown keys, ranges on keys that are not numbers, and bounds or choices
    that the key does not accept.
    """
    if not cfg.search:
        raise InputError("the config has no `search:` section: nothing to tune",
                         "add e.g. search: {learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}}")
    leaves = _leaves(TrainConfig)
    base = _base_data(cfg)
    kinds: dict[str, str] = {}
    problems: list[str] = []
    for key, space in cfg.search.items():
        if key not in leaves or key in NOT_TUNABLE:
            problems.append(f"search.{key}: not a tunable config key")
            continue
        numeric = _numeric(leaves[key])
        values = _space_values(space)
        if space.choices is not None:
            kinds[key] = "choices"
            odd = [c for c in space.choices if c is not None and not isinstance(c, bool | int | float | str)]
            if odd:
                problems.append(f"search.{key}: choices must be numbers, strings, booleans or null (got {odd[0]!r})")
                continue
        elif numeric is None:
            problems.append(f"search.{key}: a low/high range needs a numeric key; give `choices` instead")
            continue
        else:
            kinds[key] = "int" if numeric == "int" else "float"
            if space.low > space.high:
                problems.append(f"search.{key}: low ({space.low:g}) is above high ({space.high:g})")
            if space.log and space.low <= 0:
                problems.append(f"search.{key}: a log range needs low > 0 (got {space.low:g})")
            if numeric == "int" and not (float(space.low).is_integer() and float(space.high).is_integer()):
                problems.append(f"search.{key}: {key} is an integer, the bounds must be integers")
                continue
            if numeric == "int":
                values = [int(v) for v in values]
        for value in values:
            try:
                TrainConfig.model_validate(_with(base, key, value))
            except ValidationError as exc:
                messages = "; ".join(e["msg"] for e in exc.errors())
                problems.append(f"search.{key}: {value!r} is not accepted: {messages}")
    if problems:
        raise InputError(f"the search space has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems),
                         "tunable keys: " + ", ".join(tunable_keys()))
    return kinds


def _space_values(space: SearchRange) -> list[Any]:
    return list(space.choices) if space.choices is not None else [space.low, space.high]


def _suggest(trial: Any, key: str, space: SearchRange, kind: str) -> Any:
    if kind == "choices":
        return trial.suggest_categorical(key, space.choices)
    if kind == "int":
        return trial.suggest_int(key, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(key, space.low, space.high, log=space.log)


def pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner()


def _storage(store: Store) -> Any:
    import optuna

    url = sqlalchemy_url(store.workspace.database_url)
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def study_name(store: Store, cfg: TrainConfig) -> str:
    """The optuna study of this config; outside the default project the project is part of the name, so two
    projects tuning configs of the same name never share (or see) one study."""
    dataset = store.get_dataset(cfg.dataset)
    name = cfg.name or f"tune-{dataset.id}-{resolve(cfg, dataset.kind).task}"
    return name if store.project == DEFAULT_PROJECT else f"{store.project}/{name}"


def tune(store: Store, cfg: TrainConfig, trials: int | None = None) -> dict[str, Any]:
    """Run `trials` (default: cfg.trials) trials of the config's study and return the study's best trial."""
    import optuna

    from tunelab.train.recipe import train

    kinds = check_search(cfg)
    dataset = store.get_dataset(cfg.dataset)
    if "validation" not in dataset.splits:
        raise InputError(f"dataset {dataset.id} has no validation split: tune minimises the validation loss",
                         "prepare it with a validation split (split.validation in prep.yaml)")
    name = study_name(store, cfg)
    count = trials or cfg.trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tunelab reports each trial itself
    study = optuna.create_study(study_name=name, storage=_storage(store), load_if_exists=True, direction="minimize",
                                pruner=pruner())
    done_before = len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + done_before)
    base = _base_data(cfg)
    say(f"study {name}: {count} trial(s) now" + (f", {done_before} before" if done_before else ""))

    def objective(trial: optuna.Trial) -> float:
        params = {key: _suggest(trial, key, space, kinds[key]) for key, space in cfg.search.items()}
        data = base
        for key, value in params.items():
            data = _with(data, key, value)
        trial_cfg = TrainConfig.model_validate({**data, "name": f"{name}-t{trial.number}"})

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            trial.report(metrics["val_loss"], step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation loss {metrics['val_loss']:.4f} at step {step} is worse than "
                                         "the median of earlier trials at that step")

        try:
            result = train(store, trial_cfg, on_eval=on_eval)
        finally:
            with contextlib.suppress(NotFoundError):  # no run when the trial failed before it started
                trial.set_user_attr("run", store.get_run(trial_cfg.name)["id"])
        if result["state"] != "succeeded":
            raise TunelabError(f"trial {trial.number}: run {result['run']} ended {result['state']}",
                               result.get("error"))
        trial.set_user_attr("model", result["model"])
        return result["best_val_loss"]

    def progress(_study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in frozen.params.items())
        run = frozen.user_attrs.get("run", "-")
        if frozen.state == optuna.trial.TrialState.COMPLETE:
            say(f"trial {frozen.number}: val_loss {frozen.value:.4f}  ({shown})  run {run}, "
                f"model {frozen.user_attrs.get('model')}")
        elif frozen.state == optuna.trial.TrialState.PRUNED:
            last = max(frozen.intermediate_values) if frozen.intermediate_values else 0
            say(f"trial {frozen.number}: pruned at step {last}  ({shown})  run {run}")
        else:
            say(f"trial {frozen.number}: {frozen.state.name.lower()}  ({shown})  run {run}")

    study.optimize(objective, n_trials=count, callbacks=[progress], gc_after_trial=True)
    return _result(store, study, name)


def _result(store: Store, study: Any, name: str) -> dict[str, Any]:
    import optuna

    states = [t.state.name.lower() for t in study.trials]
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "model" in t.user_attrs]
    if not finished:
        raise TunelabError(f"no trial of study {name} finished ({', '.join(states) or 'no trials'})",
                           "run more trials, or widen the search space")
    best = min(finished, key=lambda t: t.value)
    model = store.get_model(best.user_attrs["model"])
    store.audit("tune.finish", name, {"best_trial": best.number, "model": model["id"], "trials": len(states)})
    return {"study": name, "storage": _safe_url(store.workspace.database_url),
            "trials": len(states), "complete": states.count("complete"), "pruned": states.count("pruned"),
            "failed": states.count("fail"), "best_trial": best.number, "best_params": best.params,
            "best_value": best.value, "run": best.user_attrs.get("run"), "model": model["id"],
            "stage": model["stage"], "output": model["path"]}


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url(url)).render_as_string(hide_password=True)
