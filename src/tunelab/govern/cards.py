"""Model cards: a Hugging Face `README.md` for every registered model, written with `huggingface_hub.ModelCard`.

A card is how a model explains itself once it leaves tunelab (an export copied to another team, a hub upload): what
it was made from (base model, every dataset version up to the raw import, what each step removed and redacted), how
(the resolved training config), how well (each evaluation's headline metrics with their 95% intervals, in the
front matter's `model-index` too, so hub tooling reads them), what to watch (forgetting and bias flags), what it is
for, and who let it reach production. Everything comes from the store and the files it points to, so a card is
rebuilt, never edited: after training, after an evaluation, a promotion or an approval, after an erasure, and into
every merged or GGUF export. It never quotes a row of data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from tunelab.store import Store
from tunelab.store import approvals as approvals_table

CARD = "README.md"
EXPORT_MARKER = "export.json"  # what `tunelab.export` writes into an export folder, naming the model
_PIPELINES = {"classification": "text-classification", "token_classification": "token-classification",
              "sft": "text-generation"}
_USES = {
    "classification": "labelling short texts with one of the labels it was trained on ({labels})",
    "token_classification": "tagging entity spans of the types it was trained on ({labels})",
    "sft": "answering in the style and domain of its training conversations",
}


def render(store: Store, ref: str) -> str:
    """The card of a model, as text (what `tunelab models card` prints)."""
    return str(build(store, store.get_model(ref)))


def refresh(store: Store, model_id: str) -> Path | None:
    """Rewrite the card in the model's own folder and in the exports beside it (`tunelab export` without --out),
    so a quarantine reaches the copies tunelab knows of; None when the folder is gone (a deleted run)."""
    model = store.get_model(model_id)
    folder = Path(model["path"])
    if not folder.is_dir():
        return None
    for export in folder.parent.glob("export-*"):
        marker = export / EXPORT_MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("model") == model["id"]:
            write(store, model, export)
    return write(store, model, folder)


def write(store: Store, model: dict[str, Any], folder: Path) -> Path:
    """Write the model's card into `folder` (its own folder, or an export), replacing any README.md there (PEFT
    writes a placeholder one with every adapter)."""
    path = folder / CARD
    build(store, model).save(path)
    return path


def build(store: Store, model: dict[str, Any]) -> ModelCard:
    """The card: front matter (ModelCardData with `model-index`) and the sections, in the order a reader asks."""
    run = store.run_of(model)
    base, evaluations = store.trained_base(model, run), tuned_evaluations(store, model["id"])
    data = ModelCardData(model_name=model["name"], base_model=base, library_name=_library(model),
                         pipeline_tag=_PIPELINES.get(model["task"] or ""), license=None,
                         tags=["tunelab", *(t for t in (model["task"], model["kind"]) if t)],
                         eval_results=_index(evaluations) or None)
    sections = [_summary(model, run, base), _quarantine(store, model), _lineage(store, model["dataset_id"]),
                _training(model, run), _evaluation(evaluations), _flags(evaluations), _uses(model),
                _approvals(store, model)]
    body = "\n\n".join(s for s in sections if s)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _library(model: dict[str, Any]) -> str:
    return "peft" if model["kind"] == "adapter" else "transformers"


def _summary(model: dict[str, Any], run: dict[str, Any] | None, base: str) -> str:
    method = (run or {}).get("method") or model["kind"]
    revision = (run or {}).get("base_revision")
    lines = [f"# {model['name']} (`{model['id']}`)", "",
             f"A {model['task'] or 'fine-tuned'} model made by tunelab: `{method}` fine-tuning of "
             f"`{base}`" + (f" (revision `{revision}`)" if revision else "")
             + f" on dataset version `{model['dataset_id']}`.", "",
             f"- Registry stage: **{model['stage'] or 'candidate'}**",
             f"- Kind: {model['kind']} ({_library(model)})", f"- Registered: {model['created_at']}"]
    if run:
        lines.append(f"- Run: `{run['id']}` ({run['state']}, {run['step']} steps)")
    return "\n".join(lines)


def _quarantine(store: Store, model: dict[str, Any]) -> str:
    if model["stage"] != "quarantined":
        return ""
    from tunelab.govern.erasure import quarantine_reason

    erasure = quarantine_reason(store, model["id"]) or "an erasure"
    return ("## Quarantined\n\n"
            f"**Do not use.** Data this model was trained on was erased ({erasure}); tunelab will not serve it. "
            "Train it again on the replacement dataset version: the erasure report "
            f"(`$TUNELAB_HOME/erasures/{erasure}/report.json`) names it and `tunelab data erase --retrain` writes "
            "the config.")


def _lineage(store: Store, dataset_id: str | None) -> str:
    """Every version from the model's dataset up to the raw import: counts, sources, and what each step did."""
    lines = ["## Data lineage"]
    seen: set[str] = set()
    while dataset_id and dataset_id not in seen:
        seen.add(dataset_id)
        version = store.find_dataset(dataset_id)
        if version is None:
            lines.append(f"\n- `{dataset_id}`: deleted from this workspace")
            break
        splits = ", ".join(f"{k} {v:,}" for k, v in version.splits.items())
        lines.append(f"\n### `{version.id}` {version.name} ({version.kind})\n\n- Rows: {splits}"
                     f"\n- Personal data de-identified: {'yes' if version.pii_redacted else 'no'}"
                     f"\n- Dataset card: `{Path(version.path) / 'card.html'}`")
        lines += [f"- Source: `{Path(s['file']).name}` (sha256 `{str(s.get('sha256', ''))[:16]}`)"
                  for s in version.sources if s.get("file")] if version.parent_id is None else []
        lines += [f"- Step {_step(s)}" for s in version.steps]
        dataset_id = version.parent_id
    return "\n".join(lines) if len(lines) > 1 else ""


def _step(step: dict[str, Any]) -> str:
    """One import, prepare or erase step in a line: rows in and out, and the counts it recorded (PII types)."""
    name = f"`{step.get('name')}`"
    if not isinstance(step.get("rows_in"), int):
        return name
    counts = [f"{k}: {v}" for k, v in step.items() if k not in ("name", "rows_in", "rows_out", "seconds")
              and isinstance(v, int | float | str) and not isinstance(v, bool)]
    entities = step.get("entities")
    if isinstance(entities, dict) and entities:
        counts.append("redacted " + ", ".join(f"{k} {v}" for k, v in sorted(entities.items())))
    return f"{name}: {step['rows_in']:,} -> {step.get('rows_out', 0):,} rows" + (f" ({'; '.join(counts)})"
                                                                                if counts else "")


def _training(model: dict[str, Any], run: dict[str, Any] | None) -> str:
    lines = ["## Training"]
    metrics = {k: v for k, v in (model["metrics"] or {}).items() if v is not None}
    if metrics:
        lines.append("\nAt the kept (best) checkpoint: " + ", ".join(f"{k} {_num(v)}" for k, v in metrics.items()))
    if run:
        config = yaml.safe_dump(run["config_resolved"], sort_keys=False).strip()
        lines.append(f"\nThe resolved config (`tunelab runs show {run['id']}`):\n\n```yaml\n{config}\n```")
    else:
        lines.append("\nNo training run is recorded for this model (registered by hand).")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tuned_evaluations(store: Store, model_id: str) -> list[dict[str, Any]]:
    """The model's evaluations as the tuned model, newest first, each with its eval.json (None once the report was
    deleted): what its card shows and what a promotion's gate is read from."""
    out = []
    for row in store.evaluations(model_id):
        if row["role"] != "tuned":
            continue
        path = Path(row["report_path"]).with_name("eval.json")
        out.append({**row, "result": json.loads(path.read_text()) if path.exists() else None})
    return out


def _intervals(evaluation: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """Metric -> (value, low, high): the metrics of the tuned model that carry a bootstrap interval."""
    result = evaluation["result"]
    values = (result.get("metrics") or {}).get(result.get("tuned"), {})
    return {name: (values[name], *values[f"{name}_ci"]) for name in values
            if isinstance(values[name], int | float) and f"{name}_ci" in values}


def _index(evaluations: list[dict[str, Any]]) -> list[EvalResult]:
    """model-index entries: the newest evaluation per dataset and split, interval in the metric's display name."""
    seen, out = set(), []
    for evaluation in evaluations:
        key = (evaluation["dataset_id"], evaluation["split"])
        if evaluation["result"] is None or key in seen:
            continue
        seen.add(key)
        task = _PIPELINES.get(evaluation["result"].get("task", ""), "text-generation")
        out += [EvalResult(task_type=task, dataset_type=key[0], dataset_name=key[0], dataset_split=key[1],
                           metric_type=name, metric_value=round(value, 4),
                           metric_name=f"{name} (95% CI {low:.4f}-{high:.4f})")
                for name, (value, low, high) in _intervals(evaluation).items()]
    return out


def _evaluation(evaluations: list[dict[str, Any]]) -> str:
    if not evaluations:
        return "## Evaluation\n\nNot evaluated yet: `tunelab eval MODEL --dataset DATASET`."
    lines = ["## Evaluation"]
    for evaluation in evaluations:
        result = evaluation["result"]
        head = f"\n### `{evaluation['evaluation_id']}` on `{evaluation['dataset_id']}` ({evaluation['split']})"
        if result is None:
            lines.append(f"{head}\n\nIts report was deleted with the data it scored.")
            continue
        lines.append(f"{head}, {result.get('examples', 0):,} examples\n\n| metric | tuned | 95% interval | vs base |\n"
                     "|---|---|---|---|")
        deltas = _base_deltas(result)
        lines += [f"| {name} | {value:.4f} | [{low:.4f}, {high:.4f}] | {_delta(deltas.get(name))} |"
                  for name, (value, low, high) in _intervals(evaluation).items()]
        lines.append(_gate(result.get("gate")))
    return "\n".join(line for line in lines if line)


def _gate(gate: dict[str, Any] | None) -> str:
    if not gate:
        return ""
    checks = ", ".join(f"{c['metric']} {c['required']:+g} over {c['against']}" for c in gate.get("checks", []))
    return f"\nRelease gate: **{'passed' if gate['passed'] else 'failed'}**" + (f" ({checks})" if checks else "")


def _base_deltas(result: dict[str, Any]) -> dict[str, float]:
    base = next((c["key"] for c in result.get("contenders", []) if c["role"] == "base"), None)
    return (result.get("comparisons") or {}).get(base, {}).get("deltas", {}) if base else {}


def _delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.4f}"


def _flags(evaluations: list[dict[str, Any]]) -> str:
    """Forgetting and bias, from the newest evaluation that ran each check."""
    lines = []
    for evaluation in (e for e in evaluations if e["result"]):
        result, where = evaluation["result"], f"(`{evaluation['evaluation_id']}`)"
        forgot = result.get("forgetting")
        if forgot and not any(line.startswith("- Forgetting") for line in lines):
            state = forgot["reason"] if forgot["flagged"] else f"{forgot['metric']} within {forgot['threshold']:.0%}"
            lines.append(f"- Forgetting {where}: {'**flagged**: ' if forgot['flagged'] else 'not flagged, '}{state}")
        groups = (result.get("bias") or {}).get(result.get("tuned"))
        if groups and not any(line.startswith("- Bias") for line in lines):
            reasons = "; ".join(groups.get("reasons") or []) or "gaps between groups within the threshold"
            lines.append(f"- Bias {where}: {'**flagged**: ' if groups['flagged'] else 'not flagged, '}{reasons}")
    if not lines:
        return ("## Forgetting and bias\n\nNot checked yet (`tunelab eval` runs the forgetting check; "
                "`--group-column` the bias check).")
    return "## Forgetting and bias\n\n" + "\n".join(lines)


def _uses(model: dict[str, Any]) -> str:
    labels = ", ".join(sorted(model["labels"] or {})) or "see the evaluation"
    use = _USES.get(model["task"] or "", "the task of its training data").format(labels=labels)
    return ("## Intended use and limits\n\n"
            f"Intended for {use}, on text like its training data (the lineage above), inside the organisation "
            "that trained it.\n\n"
            "- It knows only what its data showed: other domains, languages or label sets are out of scope and were "
            "not evaluated.\n"
            "- Evaluation numbers hold for the evaluation sets named above; the intervals say how much they could "
            "move on another sample of the same kind.\n"
            "- Personal data was removed from the training data as the lineage says; detection is not perfect "
            "(docs/pii.md), so do not serve it to people outside the data's audience without review.\n"
            "- Not for decisions about people without a human in the loop.")


def _approvals(store: Store, model: dict[str, Any]) -> str:
    rows = approvals_table.history(store, model["id"])
    if not rows:
        return "## Approvals\n\nNone: production needs a passing gate and a reviewer's approval (docs/governance.md)."
    lines = ["## Approvals", "", "| requested by | at | evaluation | approved by | at |", "|---|---|---|---|---|"]
    lines += [f"| {r['requested_by']} | {r['requested_at']} | `{r['evaluation_id']}` | {r['approved_by'] or 'pending'} "
              f"| {r['approved_at'] or '-'} |" for r in rows]
    return "\n".join(lines)
