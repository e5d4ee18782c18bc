"""The `tunelab` command: parse arguments, call a service function, print the result. Nothing else.

Conventions every command follows: `--json` prints exactly one JSON object on stdout (human text and progress go to
stderr); a user mistake exits with code 2 and a short message, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunelab import cli_govern, cli_jobs, cli_lineage
from tunelab import data as data_service
from tunelab.cli_output import JsonFlag, emit
from tunelab.errors import InputError, TunelabError
from tunelab.govern.access import open_as
from tunelab.progress import say

if TYPE_CHECKING:
    from tunelab.govern.keys import KeyCreated, KeyView

app = typer.Typer(help="tunelab: from raw business text to a fine-tuned, evaluated and served model.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Import, prepare, inspect, export and delete datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

cli_govern.register(app)
cli_jobs.register(app)


@app.callback()
def _options(ctx: typer.Context, project: Annotated[str | None, typer.Option(
        "--project", envvar="TUNELAB_PROJECT", help="The project (tenant) to act in: its datasets, runs, models and "
        "keys only (default: the API key's project, else `default`).")] = None) -> None:
    """tunelab: from raw business text to a fine-tuned, evaluated and served model."""
    from tunelab.govern.access import choose_project

    choose_project(project)
    ctx.call_on_close(lambda: choose_project(None))  # for this command only, also when run in-process

DatasetArg = Annotated[str, typer.Argument(help="Dataset id, id prefix or name.")]


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        column, sep, field = pair.partition("=")
        if not sep or not column or not field:
            raise InputError(f"--map {pair!r} is not COLUMN=FIELD", "e.g. --map category=label")
        mapping[column] = field
    return mapping


@data_app.command("import")
def data_import(
    paths: Annotated[list[str], typer.Argument(help="Files or folders; SPLIT=PATH keeps a split (train, validation, "
                                                   "test).")],
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the first file's name).")] = None,
    format: Annotated[str, typer.Option("--format", help="auto, chat, instruction, completion, "
                                                     "token_classification, classification, or conll (CoNLL "
                                                     "files, read as token_classification).")] = "auto",
    map: Annotated[list[str] | None, typer.Option("--map", help="Rename a column: COLUMN=FIELD (repeatable).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on any bad record instead of rejecting it.")] = False,
    eval_set: Annotated[bool, typer.Option("--eval-set", help="Register as an evaluation set (leakage "
                                                         "checks).")] = False,
    max_record_bytes: Annotated[int, typer.Option(help="Largest record accepted, in bytes.")] = 1_000_000,
    as_json: JsonFlag = False,
) -> None:
    """Import CSV, TSV, JSONL, JSON, Parquet, CoNLL or a `save_to_disk` folder as a new dataset version.

    Example: tunelab data import sms.tsv --map SMS=text --map Label=label --name sms-spam
    """
    store = open_as("data.import", name or paths[0])
    result = data_service.import_data(store, paths, name=name, fmt=format, mapping=_mapping(map or []),
                                      strict=strict, eval_set=eval_set, max_record_bytes=max_record_bytes)
    human = [f"imported {result.version.rows:,} rows as {result.version.kind} dataset {result.version.id} "
             f"({result.version.name}); {result.detection.reason}"]
    human += [f"  note: {n}" for n in result.notes]
    if result.rejected:
        human.append(f"  rejected {result.rejected:,} record(s); see {result.rejects_path}")
        human += [f"    {p}" for p in result.problems]
    emit(result.to_json(), as_json, "\n".join(human))


@data_app.command("prepare")
def data_prepare(
    dataset: DatasetArg,
    config: Annotated[Path | None, typer.Option("--config", help="A prep.yaml (see README: data prepare).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Clean, deduplicate, de-identify, split and leak-check a dataset into a new version.

    Example: tunelab data prepare sms-spam --set dedup.threshold=0.9 --set split.group_column=customer_id
    """
    from tunelab.config import load_config
    from tunelab.data.prep_config import PrepConfig

    version = data_service.prepare(open_as("data.prepare", dataset), dataset, load_config(PrepConfig, config, set_))
    result = {**version.summary(), "card": str(Path(version.path) / "card.html")}
    splits = ", ".join(f"{k} {v:,}" for k, v in version.splits.items())
    emit(result, as_json, f"prepared {version.id} from {version.parent_id}: {splits}\n  card: {result['card']}")


@data_app.command("list")
def data_list(as_json: JsonFlag = False) -> None:
    """List dataset versions, oldest first.

    Example: tunelab data list --json
    """
    versions = open_as("data.read").list_datasets()
    lines = [f"{v.id}  {v.name:<30} {v.kind:<14} {v.rows:>9,} rows  parent={v.parent_id or '-'}" for v in versions]
    emit({"datasets": [v.summary() for v in versions]}, as_json, "\n".join(lines) or "no datasets yet")


@data_app.command("show")
def data_show(
    dataset: DatasetArg,
    card: Annotated[bool, typer.Option("--card", help="Print the path of the HTML card (written if missing).")] = False,
    open_: Annotated[bool, typer.Option("--open", help="With --card: open it in a browser.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a version: shape, splits, counts, steps with statistics, sample rows.

    Example: tunelab data show sms-spam --card
    """
    store = open_as("data.read", dataset)
    if card:
        path = data_service.card_path(store, store.get_dataset(dataset))
        if open_:
            import webbrowser

            webbrowser.open(path.as_uri())
        emit({"card": str(path)}, as_json, str(path))
        return
    info = data_service.show(store, dataset)
    emit(info, as_json, _describe(info))


def _describe(info: dict[str, Any]) -> str:
    lines = [f"{info['dataset']}  {info['name']}  ({info['kind']}, parent {info['parent'] or '-'})",
             "splits: " + ", ".join(f"{k} {v:,}" for k, v in info["splits"].items())]
    for step in info["steps"]:
        extra = {k: v for k, v in step.items() if k not in ("name", "rows_in", "rows_out")
                 and not isinstance(v, (list, dict))}
        lines.append(f"  {step['name']:<12} {step['rows_in']:>9,} -> {step['rows_out']:>9,}  {extra}")
    for split, rows in info["samples"].items():
        lines += [f"  [{split}] {json.dumps(row, ensure_ascii=False)[:160]}" for row in rows]
    lines.append(f"card: {info['card']}")
    return "\n".join(lines)


@data_app.command("export")
def data_export(
    dataset: DatasetArg,
    split: Annotated[str, typer.Option("--split", help="train, validation or test.")] = "train",
    format: Annotated[str, typer.Option("--format", help="jsonl, parquet or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default: stdout).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export one split of a version.

    Example: tunelab data export sms-spam --split test --format csv --out test.csv
    """
    if as_json and out is None:
        raise InputError("--json needs --out: the data itself would be on stdout", "add --out PATH")
    result = data_service.export(open_as("data.export", dataset), dataset, split, format, out, sys.stdout.buffer)
    if out is not None:
        emit(result, as_json, f"wrote {result['rows']:,} rows to {out}")


@data_app.command("delete")
def data_delete(
    dataset: DatasetArg,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete even if models were trained on it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a version: its files and records, with no copy of its rows left in the workspace.

    Example: tunelab data delete ds-1a2b3c4d5e6f --yes
    """
    store = open_as("data.delete", dataset)
    version = store.get_dataset(dataset)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"deleting {version.id} needs confirmation", "pass --yes")
        typer.confirm(f"delete {version.id} ({version.name}, {version.rows:,} rows)?", abort=True)
    result = data_service.delete(store, version.id, force=force)
    emit(result, as_json, f"deleted {result['deleted']} ({result['rows']:,} rows)")


runs_app = typer.Typer(help="Follow, inspect and cancel training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Trained and base models.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
cli_govern.register_registry(models_app)
cli_lineage.register(data_app, models_app)


@app.command("train")
def train_command(
    config: Annotated[Path | None, typer.Argument(help="A train.yaml (see README: training).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue this run from its last checkpoint.")] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Processes (DDP through torchrun).")] = 1,
    submit: cli_jobs.SubmitFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune a base model on a prepared dataset and register the model.

    Example: tunelab train examples/sms_spam/train.yaml --set epochs=2
    """
    from tunelab.config import load_config
    from tunelab.train.config import TrainConfig

    if submit:
        return cli_jobs.submit_train(config, set_, resume, as_json)
    if nproc > 1:
        from tunelab.train.launch import launch

        raise SystemExit(launch(nproc, sys.argv[1:]))
    cfg = load_config(TrainConfig, config, set_) if config or set_ else None
    from tunelab.train.recipe import train

    store = open_as("train.run", resume or str(config))
    result = train(store, cfg, resume=resume)
    if result.get("rank"):  # another process of a --nproc run: rank 0 reports
        return
    emit(result, as_json, _run_text(result))
    if result["state"] != "succeeded":
        raise SystemExit(3)


@app.command("tune")
def tune_command(
    config: Annotated[Path, typer.Argument(help="A train.yaml with a `search:` section (see README: hyperparameter "
                                                "search).")],
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trials this process runs (default: the "
                                                                        "config's `trials`).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search hyperparameters: one training run per trial, an optuna study in the workspace database, the best model.

    Example: tunelab tune tune.yaml --trials 20
    """
    from tunelab.config import load_config
    from tunelab.train.config import TrainConfig
    from tunelab.train.tune import tune

    store = open_as("train.run", str(config))
    result = tune(store, load_config(TrainConfig, config, set_), trials)
    params = ", ".join(f"{k}={v}" for k, v in result["best_params"].items())
    emit(result, as_json, f"study {result['study']}: {result['trials']} trial(s), {result['pruned']} pruned\n"
                          f"  best: trial {result['best_trial']}, validation loss {result['best_value']:.4f} "
                          f"({params})\n  model {result['model']} ({result['stage']}) in {result['output']}")


def _run_text(run: dict[str, Any]) -> str:
    lines = [f"run {run['run']} ({run['name']}): {run['state']} at step {run['step']}/{run['total_steps']}"]
    if run.get("best_val_loss") is not None:
        accuracy, f1 = run.get("best_val_accuracy"), run.get("best_val_f1")
        lines.append(f"  best checkpoint: step {run['best_step']}, validation loss {run['best_val_loss']:.4f}"
                     + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")
                     + (f", macro F1 {f1:.4f}" if f1 is not None else ""))
    if run.get("model_id"):
        lines.append(f"  model {run['model_id']}" + (f" in {run['output']}" if run.get("output") else ""))
    lines += [f"  warning: {w}" for w in run.get("warnings") or []]
    if run.get("error"):
        lines.append(f"  {run['error']}")
    return "\n".join(lines)


@runs_app.command("list")
def runs_list(as_json: JsonFlag = False) -> None:
    """List runs; a run whose process vanished shows as failed (and resumable).

    Example: tunelab runs list
    """
    from tunelab.train import runs

    items = runs.list_runs(open_as("runs.read"))
    lines = [f"{r.run}  {r.name:<30} {r.state:<11} step {r.step}/{r.total_steps}" for r in items]
    emit({"runs": [r.model_dump(mode="json") for r in items]}, as_json, "\n".join(lines) or "no runs yet")


@runs_app.command("show")
def runs_show(run: Annotated[str, typer.Argument(help="Run id or name.")], as_json: JsonFlag = False) -> None:
    """Show a run: config, state, best metrics and its metric stream.

    Example: tunelab runs show run-20261126-1a2b3c
    """
    from tunelab.train import runs

    result = runs.show(open_as("runs.read", run), run).model_dump(mode="json")
    emit(result, as_json, _run_text(result))


@runs_app.command("cancel")
def runs_cancel(run: Annotated[str, typer.Argument(help="Run id or name.")], as_json: JsonFlag = False) -> None:
    """Stop a running run: it writes a checkpoint and ends as cancelled (resumable).

    Example: tunelab runs cancel run-20261126-1a2b3c
    """
    from tunelab.train import runs

    result = runs.cancel(open_as("train.cancel", run), run)
    emit(result, as_json, f"asked {result['run']} to stop; it checkpoints first")


@runs_app.command("logs")
def runs_logs(run: Annotated[str, typer.Argument(help="Run id or name.")]) -> None:
    """Print a run's training log.

    Example: tunelab runs logs run-20261126-1a2b3c
    """
    from tunelab.train import runs

    sys.stdout.write(runs.logs(open_as("runs.read", run), run))


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """List trained models.

    Example: tunelab models list --json
    """
    items = open_as("model.read").list_models()
    lines = [f"{m['id']}  {m['name']:<30} {m['kind']:<8} {m['task'] or '-':<15} data={m['dataset_id']}" for m in items]
    emit({"models": items}, as_json, "\n".join(lines) or "no models yet")


@models_app.command("show")
def models_show(model: Annotated[str, typer.Argument(help="Model id or name.")], as_json: JsonFlag = False) -> None:
    """Show a model: where it is, what it was trained on and how well.

    Example: tunelab models show m-1a2b3c4d5e
    """
    record = open_as("model.read", model).get_model(model)
    emit(record, as_json, "\n".join(f"{k}: {v}" for k, v in record.items()))


@models_app.command("base")
def models_base(as_json: JsonFlag = False) -> None:
    """List the base models known by short name, and whether each is installed.

    Example: tunelab models base
    """
    from tunelab.models import list_base_models

    items = list_base_models()
    lines = [f"{m['name']:<14} {m['architecture']:<8} {'installed' if m['installed'] else 'missing':<10} "
             f"{m['description']}" for m in items]
    emit({"base_models": items}, as_json, "\n".join(lines))


@models_app.command("merge")
def models_merge(
    model: Annotated[str, typer.Argument(help="Model id or name (a LoRA adapter).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: next to the adapter).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Merge a LoRA adapter into its base: a plain Hugging Face folder that transformers and vLLM load.

    Example: tunelab models merge m-1a2b3c4d5e --out merged/
    """
    from tunelab.train.service import merge_model

    result = merge_model(open_as("model.merge", model), model, out)
    emit(result, as_json, f"merged {result['model']} into {result['out']}")


# ---- evaluation ------------------------------------------------------------------------------------------------


def _improvements(pairs: list[str]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        metric, sep, delta = pair.partition("=")
        try:
            out[metric] = float(delta)
        except ValueError:
            sep = ""
        if not sep or not metric:
            raise InputError(f"--min-improvement {pair!r} is not METRIC=DELTA", "e.g. --min-improvement f1_macro=0.02")
    return out


def _eval_text(result: dict[str, Any]) -> str:
    lines = [f"evaluation {result['evaluation']}"]
    for key, values in result["models"].items():
        lines.append(f"  {key}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))
    verdicts = {v["sentence"] for v in result.get("verdicts", [])}
    lines += [f"  verdict: {v['sentence']}" for v in result.get("verdicts", [])]
    lines += [f"  flag: {flag}" for flag in result["flags"] if flag not in verdicts]
    if result["gate"]:
        lines.append(f"  gate: {'passed' if result['gate']['passed'] else 'FAILED'}")
    lines.append(f"  report: {result['report']}")
    return "\n".join(lines)


@app.command("eval")
def eval_command(
    model: Annotated[str, typer.Argument(help="The fine-tuned model: id, id prefix or name.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id, id prefix or name to score on.")],
    split: Annotated[str, typer.Option("--split", help="Split to score.")] = "test",
    compare: Annotated[list[str] | None, typer.Option("--compare", help="Another model or a base model name to "
                                                      "score side by side (repeatable); the model's own base is "
                                                      "always included.")] = None,
    min_improvement: Annotated[list[str] | None, typer.Option(
        "--min-improvement", help="METRIC=DELTA: exit 1 unless the model beats its base by DELTA "
                                  "(repeatable).")] = None,
    group_column: Annotated[str | None, typer.Option("--group-column", help="Column naming a group (region, "
                                                     "language...): metrics per group and bias flags.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Score a seeded sample of N rows (the same "
                                              "rows every time, in split order).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Generation length cap.")] = 128,
    shots: Annotated[int, typer.Option("--shots", min=0, help="Train examples shown to the k-shot base.")] = 3,
    expects_json: Annotated[bool, typer.Option("--expects-json", help="Also score the rate of valid JSON "
                                               "answers.")] = False,
    no_forgetting: Annotated[bool, typer.Option("--no-forgetting", help="Skip the forgetting check.")] = False,
    judge_url: Annotated[str | None, typer.Option("--judge-url", help="Generation: grade answers 1-5 with an LLM "
                                                  "judge at this OpenAI-compatible base URL (rubric in "
                                                  "docs/evaluation.md).")] = None,
    judge_model: Annotated[str | None, typer.Option("--judge-model", help="The judge's model name.")] = None,
    judge_key: Annotated[str, typer.Option("--judge-key", envvar="TUNELAB_JUDGE_KEY", show_default=False,
                                           help="The judge's API key (better: TUNELAB_JUDGE_KEY).")] = "none",
    as_json: JsonFlag = False,
) -> None:
    """Score a fine-tuned model against its base on the same examples; write an HTML report and eval.json.

    Example: tunelab eval m-1a2b3c4d5e --dataset sms-spam --min-improvement f1_macro=0.02
    """
    from tunelab.evaluate import Decoding, EvalOptions, evaluate
    from tunelab.evaluate.judge import JudgeSettings

    if bool(judge_url) != bool(judge_model):
        raise InputError("--judge-url and --judge-model go together", "e.g. --judge-url http://127.0.0.1:8001/v1 "
                                                                      "--judge-model judge-model-name")
    options = EvalOptions(split=split, compare=compare or [], group_column=group_column, limit=limit,
                          decoding=Decoding(max_new_tokens=max_new_tokens, shots=shots),
                          min_improvement=_improvements(min_improvement or []), forgetting=not no_forgetting,
                          expects_json=expects_json,
                          judge=JudgeSettings(judge_url, judge_model, judge_key) if judge_url else None)
    result = evaluate(open_as("eval.run", model), model, dataset, options)
    emit(result, as_json, _eval_text(result))
    if result["gate"] and not result["gate"]["passed"]:
        raise SystemExit(1)


@app.command("report")
def report_command(
    model: Annotated[str, typer.Argument(help="Model id, id prefix or name.")],
    open_: Annotated[bool, typer.Option("--open", help="Open the report in the default browser.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print where a model's latest evaluation report is.

    Example: tunelab report m-1a2b3c4d5e --open
    """
    from tunelab.evaluate import latest_report

    result = latest_report(open_as("eval.read", model), model)
    if open_:
        import webbrowser

        webbrowser.open(Path(result["report"]).as_uri())
    emit(result, as_json, result["report"])


# ---- API keys ----------------------------------------------------------------------------------------------------

keys_app = typer.Typer(help="API keys for `tunelab serve`: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_text(key: KeyView | KeyCreated) -> str:
    models = ", ".join(key.models) if key.models is not None else "every model"
    expires = key.expires_at.isoformat(timespec="minutes") + " UTC" if key.expires_at else "never"
    rate = f"{key.rate_limit}/min" if key.rate_limit else "unlimited"
    return (f"{key.id}  {key.name:<24} {key.state:<8} models: {models}; expires: {expires}; rate: {rate}; "
            f"scopes: {', '.join(key.scopes)}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown in lists and logs).")],
    models: Annotated[list[str] | None, typer.Option("--models", help="A model the key may call (repeatable; "
                                                     "default: every model).")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="A duration (90m, 12h, 30d, 2w) or an ISO date "
                                                "(default: never).")] = None,
    rate_limit: Annotated[int | None, typer.Option("--rate-limit", help="Requests per minute (default: "
                                                   "unlimited).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Same as --scope manage.")] = False,
    scope: Annotated[list[str] | None, typer.Option("--scope", help="inference (call models) or manage (load and "
                                                    "unload them, CLI login of --user), repeatable (default: "
                                                    "inference; with --user: both).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Also a CLI credential of this user or service "
                                             "account (TUNELAB_API_KEY); another user's needs users.manage.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once: only a salted hash of it is stored.

    Example: tunelab keys create --name support-bot --models support-v2 --expires 30d --rate-limit 60
    """
    from tunelab.govern import keys

    created = keys.create(open_as("keys.create", name), name, models=models, expires=expires, rate_limit=rate_limit,
                          admin=admin, user=user, scopes=scope)
    notice = "This key cannot be shown again: store it now."
    if as_json:
        say(notice)
    emit(created.model_dump(mode="json"), as_json, f"{_key_text(created)}\n\n  {created.key}\n\n{notice}")


@keys_app.command("list")
def keys_list(as_json: JsonFlag = False) -> None:
    """List API keys (never their secrets): name, models, expiry, rate limit, last use, state.

    Example: tunelab keys list --json
    """
    from tunelab.govern import keys

    items = keys.views(open_as("keys.read"))
    emit({"keys": [k.model_dump(mode="json") for k in items]}, as_json,
         "\n".join(_key_text(k) for k in items) or "no keys yet")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (as in `tunelab keys list`).")],
                as_json: JsonFlag = False) -> None:
    """Revoke an API key: running servers refuse it from the next request on.

    Example: tunelab keys revoke 1a2b3c4d5e
    """
    from tunelab.govern import keys

    key = keys.revoke(open_as("keys.revoke", key_id), key_id)
    emit(key.model_dump(mode="json"), as_json, f"revoked {key.id} ({key.name})")


# ---- export ----------------------------------------------------------------------------------------------------


@app.command("export")
def export_command(
    model: Annotated[str, typer.Argument(help="Model id, id prefix or name.")],
    format: Annotated[str, typer.Option("--format", help="merged (a Hugging Face folder for transformers and vLLM) "
                                                     "or gguf (one file for llama.cpp).")] = "merged",
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: export-FORMAT next to the "
                                                           "model).")] = None,
    gguf_type: Annotated[str, typer.Option("--gguf-type", help="GGUF tensor type: f32 or f16.")] = "f32",
    as_json: JsonFlag = False,
) -> None:
    """Export a model for other runtimes: merged Hugging Face weights, or GGUF for llama-family causal LMs.

    Example: tunelab export m-1a2b3c4d5e --format gguf
    """
    from tunelab.export import export_model

    result = export_model(open_as("model.export", model), model, format, out, gguf_type)
    emit(result, as_json, f"exported {result['model']} as {result['format']} into {result['out']} "
                          f"({len(result['files'])} files, {result['bytes'] / 1e6:,.1f} MB)")


# ---- serving ---------------------------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    model: Annotated[list[str] | None, typer.Option("--model", help="A model to load: registered id or name, base "
                                                    "short name or folder (repeatable).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most rows generated together.")] = 32,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Most waiting requests per base (then 503).")] = 256,
    max_tokens_cap: Annotated[int, typer.Option("--max-tokens-cap", help="Largest max_tokens accepted (then "
                                                "400).")] = 1024,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Largest request body (then "
                                                "413).")] = 1 << 20,
    log_texts: Annotated[str, typer.Option("--log-texts", help="Texts in the request log: none, redacted or "
                                           "full.")] = "none",
    allow_unapproved: Annotated[bool, typer.Option("--allow-unapproved", help="Also serve registered models not "
                                                   "approved for production (audited).")] = False,
    trusted_proxy_header: Annotated[str | None, typer.Option("--trusted-proxy-header", help="A header naming the "
                                    "user a trusted proxy logged in (e.g. X-Forwarded-User).")] = None,
    trusted_proxy: Annotated[list[str] | None, typer.Option("--trusted-proxy", help="Address or network of a proxy "
                             "whose user header is believed (repeatable).")] = None,
    stage_check: Annotated[float, typer.Option("--stage-check", help="Seconds between rechecks of the served "
                                               "models' registry stages (a quarantined one is withdrawn).")] = 2.0,
) -> None:
    """Serve models over an OpenAI-compatible API: chat, completions, embeddings, classifications, entities.

    Example: tunelab serve --model m-1a2b3c4d5e --port 8000
    """
    from tunelab.config import parse_config
    from tunelab.serve.app import serve
    from tunelab.serve.settings import ServeSettings

    settings = parse_config(ServeSettings, {"models": model or [], "host": host, "port": port,
                                            "max_batch": max_batch, "max_queue": max_queue,
                                            "max_tokens_cap": max_tokens_cap, "max_body_bytes": max_body_bytes,
                                            "log_texts": log_texts, "allow_unapproved": allow_unapproved,
                                            "trusted_proxy_header": trusted_proxy_header,
                                            "trusted_proxies": trusted_proxy or [], "stage_check_s": stage_check},
                            "tunelab serve")
    serve(open_as("model.serve", ",".join(model or [])), settings)


def main() -> None:
    try:
        app()
    except TunelabError as exc:
        say(f"error: {exc.message}")
        if exc.hint:
            say(f"hint: {exc.hint}")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
