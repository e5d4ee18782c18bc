"""What an evaluation scores: a split of a prepared dataset as inputs, references and (optionally) groups.

Generation examples are the conversation up to its last assistant turn (the prompt) and that turn (the reference);
instruction rows become a user turn, completion rows stay plain text. Few-shot examples come from the train split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tunelab.errors import InputError
from tunelab.train.data import instruction_chats, render_chats


@dataclass
class EvalSet:
    kind: str  # classification | token_classification | chat | instruction | completion
    inputs: list[Any]  # texts ((token) classification, completion) or conversations without the final answer
    references: list[Any]  # gold labels, gold spans (token classification) or gold answers
    groups: list[str] | None = None  # the --group-column values, "(missing)" where empty
    table: pa.Table | None = field(default=None, repr=False)  # the rows scored, for perplexity on the references

    @property
    def task(self) -> str:
        return self.kind if self.kind in ("classification", "token_classification") else "sft"

    def __len__(self) -> int:
        return len(self.references)


def _conversations(table: pa.Table, kind: str) -> list[list[dict[str, str]]]:
    return table.column("messages").to_pylist() if kind == "chat" else instruction_chats(table)


def _split_last_answer(conversation: list[dict[str, str]], row: int) -> tuple[list[dict[str, str]], str]:
    last = max((i for i, m in enumerate(conversation) if m["role"] == "assistant"), default=None)
    if not last:
        raise InputError(f"row {row} has no assistant message after the first message, so there is no reference "
                         "answer to score", "evaluate generation on chat data whose rows end with an answer")
    return [{"role": m["role"], "content": m["content"]} for m in conversation[:last]], conversation[last]["content"]


def eval_set(table: pa.Table, kind: str, group_column: str | None = None, limit: int | None = None) -> EvalSet:
    """A split (or `limit` of its rows) as an EvalSet.

    `limit` draws a seeded sample, kept in split order, rather than the first rows: prepared files are often sorted
    (by intent, by label), and their first 24 rows may hold three intents of twenty-seven, where a few-shot base
    that happens to see one of them as a shot looks better than it is."""
    if limit is not None and limit < table.num_rows:
        table = table.take(sorted(random.Random(0).sample(range(table.num_rows), limit)))
    groups = None
    if group_column:
        if group_column not in table.column_names:
            raise InputError(f"the split has no column {group_column!r} to group by",
                             f"its columns are: {', '.join(table.column_names)}")
        groups = ["(missing)" if v is None or str(v) == "" else str(v) for v in table.column(group_column).to_pylist()]
    if kind == "classification":
        return EvalSet(kind, [t or "" for t in table.column("text").to_pylist()],
                       [str(x) for x in table.column("label").to_pylist()], groups, table)
    if kind == "token_classification":
        return EvalSet(kind, [t or "" for t in table.column("text").to_pylist()],
                       table.column("spans").to_pylist(), groups, table)
    if kind == "completion":
        return EvalSet(kind, [p or "" for p in table.column("prompt").to_pylist()],
                       [c or "" for c in table.column("completion").to_pylist()], groups, table)
    pairs = [_split_last_answer(c, i) for i, c in enumerate(_conversations(table, kind))]
    return EvalSet(kind, [p for p, _ in pairs], [r for _, r in pairs], groups, table)


def few_shot(table: pa.Table, kind: str, k: int, seed: int = 0) -> list[tuple[Any, str]]:
    """k (prompt, answer) examples drawn from the train split with a fixed seed, for k-shot prompting of a base."""
    if k <= 0 or table.num_rows == 0:
        return []
    rows = random.Random(seed).sample(range(table.num_rows), min(k, table.num_rows))
    shots = eval_set(table.take(rows), kind)
    return list(zip(shots.inputs, shots.references, strict=True))


def prompt_ids(tokenizer: Any, data: EvalSet, shots: list[tuple[Any, str]] = ()) -> list[list[int]]:
    """Token ids of every prompt, rendered as training renders them, with the shots in front."""
    if data.kind == "completion":
        head = "".join(f"{p}{a}\n\n" for p, a in shots)
        return tokenizer([head + p for p in data.inputs], verbose=False)["input_ids"]
    demos = [m for p, a in shots for m in (*[x for x in p if x["role"] != "system"], {"role": "assistant",
                                                                                        "content": a})]
    conversations = [_with_shots(c, demos) for c in data.inputs]
    texts = render_chats(tokenizer, conversations, generation=True)
    return tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]


def _with_shots(conversation: list[dict[str, str]], demos: list[dict[str, str]]) -> list[dict[str, str]]:
    """Demonstration turns go after a system prompt (if any) and before the real question."""
    system = [m for m in conversation[:1] if m["role"] == "system"]
    return [*system, *demos, *conversation[len(system):]]
