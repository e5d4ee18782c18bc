"""The five dataset shapes, how to recognise them, and the checks that turn a raw record into a canonical row.

Canonical rows: chat `{messages: [{role, content}]}`, instruction `{instruction, input, output}`, completion
`{prompt, completion}`, token classification `{text, spans: [{start, end, label}]}` (spans.py), classification
`{text, label}`; any other column is kept as an optional string.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from tunelab.data.readers import Problem, json_type
from tunelab.data.spans import check_spans
from tunelab.errors import InputError

# In detection order: text + spans + label is token classification (the label kept as metadata).
KINDS = ("chat", "instruction", "completion", "token_classification", "classification")
REQUIRED = {
    "chat": ("messages",),
    "instruction": ("instruction", "output"),
    "completion": ("prompt", "completion"),
    "token_classification": ("text", "spans"),
    "classification": ("text", "label"),
}
OPTIONAL = {"instruction": ("input",)}
# The fields that hold free text: what de-identification reads and rewrites (never labels, spans or metadata).
FREE_TEXT = {"chat": ("messages",), "instruction": ("instruction", "input", "output"),
             "completion": ("prompt", "completion"), "classification": ("text",), "token_classification": ("text",)}
ROLES = ("system", "user", "assistant")
# Column names people use for our fields, to suggest a --map when detection fails.
ALIASES = {
    "messages": ("conversations", "conversation", "dialog", "dialogue", "chat"),
    "output": ("response", "answer", "target", "reply"),
    "completion": ("response", "answer", "reply"),
    "prompt": ("question", "query"),
    "text": ("sms", "message", "sentence", "content", "utterance", "review", "body", "email"),
    "label": ("category", "class", "intent", "sentiment", "labels", "tag"),
    "spans": ("entities", "slots", "annotations", "ner"),
}


@dataclass
class Detection:
    kind: str
    reason: str


def detect_kind(columns: list[str], requested: str = "auto") -> Detection:
    """Pick the shape from the column names (after --map), or check the requested one fits."""
    present = set(columns)
    if requested != "auto":
        missing = [f for f in REQUIRED[requested] if f not in present]
        if missing:
            raise InputError(f"--format {requested} needs the column(s) {', '.join(missing)}; the data has "
                             f"{', '.join(columns)}", _map_hint(columns, missing))
        return Detection(requested, f"--format {requested} was given")
    for kind in KINDS:
        if all(f in present for f in REQUIRED[kind]):
            return Detection(kind, f"columns {' + '.join(REQUIRED[kind])} are present")
    raise InputError(
        f"cannot tell the shape of the data from its columns ({', '.join(columns)}); expected one of: "
        + "; ".join(f"{' + '.join(REQUIRED[k])} ({k})" for k in KINDS),
        _map_hint(columns, [f for k in KINDS for f in REQUIRED[k]]),
    )


def _map_hint(columns: list[str], wanted: list[str]) -> str:
    lowered = {c.lower(): c for c in columns}
    pairs = [f"--map {lowered[a]}={field}" for field in dict.fromkeys(wanted)
             for a in (field, *ALIASES.get(field, ())) if a in lowered and lowered[a] != field]
    pairs = list(dict.fromkeys(pairs))
    return "rename columns with " + (" ".join(pairs) if pairs else "--map COLUMN=FIELD")


def rename(record: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    if not mapping:
        return record
    return {mapping.get(k, k): v for k, v in record.items()}


def _type_name(value: Any) -> str:
    """"a number", "an object": the JSON type with its article."""
    name = json_type(value)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _text(record: dict[str, Any], name: str, problems: list[Problem], required: bool = True) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            what = "missing" if name not in record or value is None else "empty"
            problems.append(Problem(name, what, "a non-empty string"))
        return ""
    if not isinstance(value, str):
        problems.append(Problem(name, f"{_type_name(value)} ({_short(value)})", "a string"))
        return ""
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(record: dict[str, Any], problems: list[Problem]) -> str:
    value = record.get("label")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isnan(value):
        problems.append(Problem("label", "NaN (not a number)", "one scalar label (string or number)"))
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 and 1 are one class (pandas writes int columns with gaps as floats)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        problems.append(Problem("label", f"{_type_name(value)} ({_short(value)})",
                                "one scalar label (string or number)"))
        return ""
    return _text(record, "label", problems)


def _messages(record: dict[str, Any], problems: list[Problem]) -> list[dict[str, str]]:
    value = record.get("messages")
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(Problem("messages", f"invalid JSON ({exc.msg})", "a JSON array of {role, content}"))
            return []
    if not isinstance(value, list) or not value:
        what = "missing" if value is None else ("empty" if value == [] else _type_name(value))
        problems.append(Problem("messages", what, "a non-empty array of {role, content} objects"))
        return []
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append(Problem(where, _type_name(message), "an object with role and content"))
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append(Problem(f"{where}.role", f"unknown role {_short(role)}", f"one of {', '.join(ROLES)}"))
            continue
        content = _text(message, "content", problems_for := [])
        problems.extend(Problem(f"{where}.content", p.problem, p.expected) for p in problems_for)
        messages.append({"role": role, "content": content})
    if len(messages) == len(value):
        problems.extend(_role_order(messages))
    return messages


def _role_order(messages: list[dict[str, str]]) -> list[Problem]:
    roles = [m["role"] for m in messages]
    start = 1 if roles[0] == "system" else 0
    for i, role in enumerate(roles[start:], start=start):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if role != expected:
            return [Problem(f"messages[{i}].role", f"{role} after {roles[i - 1] if i else 'the start'}",
                            "an optional system message, then user and assistant turns alternating from user")]
    if "assistant" not in roles:
        return [Problem("messages", "no assistant turn", "at least one assistant message to learn from")]
    return []


def _extra(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def canonical(record: dict[str, Any], kind: str) -> tuple[dict[str, Any], list[Problem]]:
    """The record as a canonical row, and every problem found in it (empty when it is valid)."""
    problems: list[Problem] = []
    if kind == "chat":
        row: dict[str, Any] = {"messages": _messages(record, problems)}
    elif kind == "classification":
        row = {"text": _text(record, "text", problems), "label": _label(record, problems)}
    elif kind == "token_classification":
        text = _text(record, "text", problems)
        row = {"text": text, "spans": check_spans(record.get("spans"), text or None, problems)}
    else:
        row = {f: _text(record, f, problems) for f in REQUIRED[kind]}
        for f in OPTIONAL.get(kind, ()):
            row[f] = _text(record, f, problems, required=False)
    known = set(REQUIRED[kind]) | set(OPTIONAL.get(kind, ()))
    for key, value in record.items():
        if key not in known:
            row[key] = _extra(value)
    return row, problems


def fields_of(kind: str) -> tuple[str, ...]:
    return REQUIRED[kind] + OPTIONAL.get(kind, ())


def input_text(row: dict[str, Any], kind: str) -> str:
    """What the model reads: the key for leakage checks (an eval prompt seen in training)."""
    if kind == "chat":
        return "\n".join(m["content"] for m in row["messages"] if m["role"] != "assistant")
    if kind == "instruction":
        return f"{row['instruction']}\n{row['input']}".strip()
    return row["prompt"] if kind == "completion" else row["text"]


def example_text(row: dict[str, Any], kind: str) -> str:
    """The whole example as text: the key for duplicate detection (labels excluded, so conflicts show)."""
    if kind == "chat":
        return "\n".join(m["content"] for m in row["messages"])
    if kind in ("classification", "token_classification"):
        return row["text"]
    return "\n".join(row[f] for f in fields_of(kind))
