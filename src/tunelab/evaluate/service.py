"""`tunelab eval`: score a fine-tuned model and its base (and any others) on the same examples, write the report.

Reads top to bottom: load the split, build the contenders, score each, compare them with the tuned model, run the
forgetting, bias and explanation checks, then write eval.json + report.html and store one result row per model.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.versions import read_split
from tunelab.errors import InputError, NotFoundError
from tunelab.evaluate import bias, entities, explain, forgetting, scoring
from tunelab.evaluate.contenders import Contender, Decoding, base_contenders, registered
from tunelab.evaluate.inputs import EvalSet, eval_set
from tunelab.evaluate.judge import RUBRIC, JudgeSettings, judge
from tunelab.evaluate.metrics import headline
from tunelab.evaluate.report import write_report
from tunelab.models import quiet_transformers
from tunelab.progress import say
from tunelab.store import Store


@dataclass
class EvalOptions:
    split: str = "test"
    compare: list[str] = field(default_factory=list)  # registered models or base model names
    group_column: str | None = None
    limit: int | None = None  # score a seeded sample of N rows of the split (inputs.eval_set says why)
    decoding: Decoding = field(default_factory=Decoding)
    min_improvement: dict[str, float] = field(default_factory=dict)  # metric -> delta the tuned model must beat
    forgetting: bool = True
    forgetting_threshold: float = 0.10  # relative degradation on the general-domain reference that is flagged
    bias_threshold: float = 0.10  # gap between groups that is flagged
    explain: int = 6  # classifier decisions to explain (half errors, half correct)
    resamples: int = 1000  # bootstrap resamples for confidence intervals and the paired test
    expects_json: bool = False  # generation: also report the rate of valid JSON answers
    judge: JudgeSettings | None = None  # generation: LLM-as-judge scores from an OpenAI-compatible endpoint


def evaluate(store: Store, model_ref: str, dataset_ref: str, options: EvalOptions | None = None) -> dict[str, Any]:
    options = options or EvalOptions()
    quiet_transformers()
    record = store.get_model(model_ref)
    dataset = store.get_dataset(dataset_ref)
    split = read_split(dataset, options.split)
    data = eval_set(split, dataset.kind, options.group_column, options.limit)
    _check_fit(record, dataset.kind, data)
    train_version = store.get_dataset(record["dataset_id"])  # base lines learn from the tuned model's own train split
    train = read_split(train_version, "train")
    labels = _labels(record, data)

    contenders = _contenders(store, record, data.task, train, train_version.kind, options)
    scored = {c.key: _score(c, data, labels, options) for c in contenders}
    tuned = next(c for c in contenders if c.role == "tuned")
    result = {
        "evaluation": f"ev-{uuid.uuid4().hex[:10]}", "task": data.task, "dataset": dataset.id, "split": options.split,
        "examples": len(data), "labels": labels, "tuned": tuned.key,
        "contenders": [{"key": c.key, "label": c.label, "role": c.role, "note": c.note, "model_id": c.model_id}
                       for c in contenders],
        "decoding": vars(options.decoding) if data.task == "sft" else None,
        "judge": {"model": options.judge.model, "base_url": options.judge.base_url, "rubric": RUBRIC}
        if options.judge and data.task == "sft" else None,  # never the judge's key
        "metrics": {key: s["metrics"] for key, s in scored.items()},
        "predictions": {key: s["predicted"] for key, s in scored.items()},  # row by row, for audits and re-scoring
        "comparisons": {c.key: scoring.compare(data.task, scored[tuned.key], scored[c.key], options.resamples)
                        for c in contenders if c is not tuned},
    }
    result.update(_checks(contenders, tuned, scored, data, labels, options))
    result["notes"] = _notes(record, data, labels, split.num_rows)
    result["verdicts"] = scoring.verdicts(result)
    result["gate"] = gate(result, options.min_improvement)
    return _save(store, result, data)


def _labels(record: dict[str, Any], data: EvalSet) -> list[str]:
    """Classification: the model's labels in id order. Token classification: its entity types and those of the
    split it does not know (scored as missed, not refused: a rare type may land in test alone)."""
    if data.task == "classification":
        return sorted(record["labels"], key=record["labels"].get)
    if data.task == "token_classification":
        return sorted(_types(record) | {s["label"] for spans in data.references for s in spans})
    return []


def _types(record: dict[str, Any]) -> set[str]:
    return {tag[2:] for tag in record["labels"] if tag != "O"}


def _notes(record: dict[str, Any], data: EvalSet, labels: list[str], split_rows: int) -> list[str]:
    unknown = [t for t in labels if data.task == "token_classification" and t not in _types(record)]
    notes = [f"entity type(s) {', '.join(unknown)} of the split are not among the model's types: every one of "
             "them counts as missed"] if unknown else []
    if len(data) < split_rows:
        notes.append(f"--limit: a seeded sample of {len(data):,} of the split's {split_rows:,} rows (seed 0, in split "
                     "order); the intervals are those of this sample")
    for note in notes:
        say(f"note: {note}")
    return notes


def _check_fit(record: dict[str, Any], kind: str, data: EvalSet) -> None:
    if record["task"] != data.task:
        raise InputError(f"model {record['id']} is a {record['task']} model but the dataset is {kind} data",
                         "evaluate a classifier on text+label data, a token classifier on text+spans data and a "
                         "chat model on chat/instruction/completion")
    if not len(data):
        raise InputError("the split to evaluate has no rows")
    if record["task"] == "classification":
        unknown = sorted(set(data.references) - set(record["labels"]))
        if unknown:
            raise InputError(f"label(s) {', '.join(unknown[:10])} of the split are not among the model's labels "
                             f"({', '.join(sorted(record['labels']))})", "evaluate on data with the same labels")


def _contenders(store: Store, record: dict[str, Any], task: str, train: Any, train_kind: str,
                options: EvalOptions) -> list[Contender]:
    say(f"loading {record['id']} and its base")
    out = base_contenders(store, store.trained_base(record), task, train, train_kind, options.decoding)
    out.append(registered(store, record["id"], "tuned"))
    for ref in options.compare:
        try:
            other = registered(store, ref, "compare")
        except NotFoundError:  # not a registered model: a base model name or folder
            out.extend(base_contenders(store, ref, task, train, train_kind, options.decoding, role="compare"))
            continue
        if other.key not in {c.key for c in out}:
            out.append(other)
    return out


def _score(contender: Contender, data: EvalSet, labels: list[str], options: EvalOptions) -> dict[str, Any]:
    say(f"scoring {contender.label} on {len(data)} examples")
    output = contender.predict(data, labels, options.decoding)
    if data.task == "classification":
        return scoring.score_classification(output["proba"], data.references, labels, options.resamples)
    if data.task == "token_classification":
        return entities.score_entities(output["entities"], data.references, labels, options.resamples)
    scored = scoring.score_generation(output, data.references, options.expects_json, options.resamples)
    if options.judge:
        graded = judge(options.judge, [scoring.last_user(p) for p in data.inputs], data.references,
                       scored["predicted"], contender.label)
        scored["metrics"].update(judge_score=graded["judge_score"], judge_invalid=graded["judge_invalid"])
        scored["judge_scores"] = graded["scores"]
    return scored


def _checks(contenders: list[Contender], tuned: Contender, scored: dict[str, Any], data: EvalSet,
            labels: list[str], options: EvalOptions) -> dict[str, Any]:
    """Forgetting, bias, explanations and the examples worth a look, all about the tuned model."""
    base = next(c for c in contenders if c.role == "base")
    out: dict[str, Any] = {"forgetting": _forgetting(base, tuned, data.task, options) if options.forgetting else None}
    out["bias"] = ({c.key: _bias(scored[c.key], data, labels, options) for c in contenders}
                   if data.groups else None)
    if data.task == "classification":
        out["per_class"] = scoring.per_class_deltas(scored[tuned.key], scored[base.key])
        out["confused_pairs"] = scoring.confused_pairs(scored[tuned.key]["metrics"]["confusion_matrix"], labels)
        out["worst"] = scoring.worst_classified(data.references, scored[tuned.key], data.inputs)
        out["explanations"] = _explain(tuned, scored[tuned.key], data, labels, options.explain)
    elif data.task == "token_classification":
        out["per_type"] = {t: {"base": scored[base.key]["metrics"]["per_type"][t]["f1"],
                               "tuned": scored[tuned.key]["metrics"]["per_type"][t]["f1"]} for t in labels}
        out["worst"] = entities.worst_tagged(data.inputs, data.references, scored[tuned.key])
        out["samples"] = entities.side_by_side(data.inputs, data.references,
                                               {c.key: scored[c.key]["predicted"] for c in contenders})
    else:
        out["worst"] = scoring.worst_generated(data.references, scored[tuned.key], data.inputs)
        out["samples"] = {c.key: scored[c.key]["predicted"][:5] for c in contenders}
    return out


def _forgetting(base: Contender, tuned: Contender, task: str, options: EvalOptions) -> dict[str, Any]:
    say("forgetting check on the general-domain reference")
    if task != "sft":  # encoders
        before = forgetting.retrieval_recall(base.model, base.tokenizer)
        after = forgetting.retrieval_recall(forgetting.encoder_of(tuned.model), tuned.tokenizer)
        return forgetting.compare(before, after, True, options.forgetting_threshold, "retrieval recall@1")
    before = forgetting.perplexity(base.model, base.tokenizer)
    after = forgetting.perplexity(tuned.model, tuned.tokenizer)
    return forgetting.compare(before, after, False, options.forgetting_threshold, "perplexity")


def _bias(scored: dict[str, Any], data: EvalSet, labels: list[str], options: EvalOptions) -> dict[str, Any]:
    if data.task == "classification":
        return bias.classification_by_group(data.references, scored["predicted"], data.groups, labels,
                                            threshold=options.bias_threshold)
    return bias.scores_by_group(scored["per_example"], data.groups, threshold=options.bias_threshold)


def _explain(tuned: Contender, scored: dict[str, Any], data: EvalSet, labels: list[str], k: int) -> dict[str, Any]:
    if k <= 0:
        return {"items": [], "html": ""}
    errors = [i for i, ok in enumerate(scored["correct"]) if not ok][: (k + 1) // 2]
    right = [i for i, ok in enumerate(scored["correct"]) if ok][: k - len(errors)]
    rows = errors + right
    say(f"explaining {len(rows)} decisions")
    id2label = tuned.model.config.id2label
    label2id = {v: int(i) for i, v in id2label.items()}
    items = explain.attribute(tuned.model, tuned.tokenizer, [data.inputs[i] for i in rows],
                              [label2id[scored["predicted"][i]] for i in rows], steps=64)
    captions = [f"row {i}: true {data.references[i]}, predicted {scored['predicted'][i]}"
                f"{' (error)' if not scored['correct'][i] else ''}" for i in rows]
    return {"rows": rows, "items": items, "html": explain.render(items, {int(i): v for i, v in id2label.items()},
                                                                captions)}


def gate(result: dict[str, Any], min_improvement: dict[str, float]) -> dict[str, Any] | None:
    """The tuned model must beat every base line by at least the asked delta on each named metric."""
    if not min_improvement:
        return None
    tuned = result["metrics"][result["tuned"]]
    checks = []
    for metric, delta in min_improvement.items():
        if metric not in tuned:
            known = ", ".join(k for k, v in tuned.items() if isinstance(v, int | float))
            raise InputError(f"--min-improvement names {metric!r}, which this evaluation does not compute",
                             f"metrics: {known}")
        for c in result["contenders"]:
            if c["role"] == "base":
                gain = tuned[metric] - result["metrics"][c["key"]][metric]
                checks.append({"metric": metric, "against": c["key"], "required": delta, "improvement": gain,
                               "passed": gain >= delta})
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _save(store: Store, result: dict[str, Any], data: EvalSet) -> dict[str, Any]:
    folder = store.workspace.home / "reports" / result["evaluation"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps(result, indent=2, default=_plain))
    report = write_report(result, folder / "report.html")
    store.add_evaluation(result["evaluation"], result["dataset"], result["split"], str(report), [
        {"model_key": c["key"], "model_id": c["model_id"], "role": c["role"], "metrics": _headline(result, c["key"])}
        for c in result["contenders"]])
    store.audit("eval.run", result["tuned"], {"evaluation": result["evaluation"], "dataset": result["dataset"]})
    tuned = next(c["model_id"] for c in result["contenders"] if c["role"] == "tuned")
    if tuned:  # a registered model's card shows its newest results
        from tunelab.govern import cards

        cards.refresh(store, tuned)
    return {"evaluation": result["evaluation"], "report": str(report), "json": str(folder / "eval.json"),
            "models": {c["key"]: _headline(result, c["key"]) for c in result["contenders"]},
            "verdicts": result["verdicts"], "gate": result["gate"], "flags": flags(result)}


def _headline(result: dict[str, Any], key: str) -> dict[str, float]:
    values = result["metrics"][key]
    names = [*headline(result["task"]), "perplexity", "roc_auc", "ece", "bleu", "json_valid_rate", "judge_score"]
    return {n: values[n] for n in names if values.get(n) is not None}


def flags(result: dict[str, Any]) -> list[str]:
    """Every warning the report raises, as sentences."""
    out = [v["sentence"] for v in result.get("verdicts", []) if v["outcome"] != "wins"]
    if result.get("forgetting") and result["forgetting"]["flagged"]:
        out.append(result["forgetting"]["reason"])
    bias_of_tuned = (result.get("bias") or {}).get(result["tuned"])
    if bias_of_tuned and bias_of_tuned["flagged"]:
        out.extend(bias_of_tuned["reasons"])
    return out


def _plain(value: Any) -> Any:
    """json.dumps fallback for numpy values and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def latest_report(store: Store, model_ref: str) -> dict[str, Any]:
    record = store.get_model(model_ref)
    rows = store.evaluations(record["id"])
    if not rows:
        raise NotFoundError(f"model {record['id']} has not been evaluated yet",
                            f"run `tunelab eval {record['id']} --dataset DATASET`")
    latest = rows[0]
    return {"model": record["id"], "evaluation": latest["evaluation_id"], "report": latest["report_path"],
            "json": str(Path(latest["report_path"]).with_name("eval.json")), "metrics": latest["metrics"],
            "created_at": latest["created_at"]}
