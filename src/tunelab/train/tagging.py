"""Token classification: BIO tag ids from character spans through word pieces, and predictions back to spans.

Alignment: a word is what the tokenizer's pre-tokenizer splits off (for BERT's WordPiece: a run of letters and
digits, or one punctuation mark). Only the FIRST sub-token of a word carries a tag (B-X, I-X or O); its other
sub-tokens, the special tokens and the padding get IGNORE_INDEX. So a long word weighs no more than a short one in
the loss, a word is never split between two entities, and a prediction reads one tag per word. A word belongs to a
span it overlaps; the first word of a span is B-, the others I-. A span that starts or ends inside a word (rare:
"5pm" tagged as "5") therefore widens to whole words, and `Encoded.truncated` counts rows cut to max_seq_length.

Reading predictions back: each word takes its first sub-token's most probable tag, the tags are read as entities by
`bio.entities` (an I- after O starts one), and an entity spans its first word's first character to its last word's
last; its score is the mean probability of its words' tags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tunelab.data import bio
from tunelab.errors import InputError
from tunelab.train.data import IGNORE_INDEX, Encoded, _backend

Words = list[tuple[int, int, int]]  # per word of a text: (index of its first token, first character, end character)


def label_map(tables: list[pa.Table]) -> dict[str, int]:
    """BIO tag -> id for every entity type of the tables: O first, then B-/I- by sorted type."""
    types: set[str] = set()
    for table in tables:
        types.update(pc.unique(pc.struct_field(pc.list_flatten(table.column("spans")), "label")).to_pylist())
    if not types:
        raise InputError("the dataset has no entity spans to learn", "annotate some entities (spans) in train")
    return {tag: i for i, tag in enumerate(bio.tag_names(types))}


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], list[Words], int]:
    """Token ids (special tokens included, cut to max_length), the words of each text, and how many were cut."""
    _backend(tokenizer)  # refuses a slow tokenizer: offsets and word ids come from the Rust side
    batch = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length,
                      return_offsets_mapping=True, verbose=False)
    ids, words = batch["input_ids"], []
    cut = sum(bool(e.overflowing) for e in batch.encodings)
    for i, offsets in enumerate(batch["offset_mapping"]):
        found: dict[int, list[int]] = {}
        for token, word in enumerate(batch.word_ids(i)):
            if word is None:
                continue
            start, end = offsets[token]
            if word not in found:
                found[word] = [token, start, end]
            found[word][2] = max(found[word][2], end)
        words.append([tuple(w) for w in found.values()])
    return ids, words, cut


def word_tags(words: Words, spans: list[dict[str, Any]]) -> list[str]:
    """The BIO tag of each word: B- for the first word overlapping a span, I- for the next ones, O elsewhere."""
    tags, k, previous = [], 0, -1
    for _, start, end in words:
        while k < len(spans) and spans[k]["end"] <= start:
            k += 1
        if k < len(spans) and spans[k]["start"] < end:
            tags.append(("I-" if previous == k else "B-") + spans[k]["label"])
            previous = k
        else:
            tags.append(bio.OUTSIDE)
    return tags


def encode_token_classification(table: pa.Table, tokenizer: Any, label2id: dict[str, int],
                                max_seq_length: int) -> Encoded:
    """text + spans rows -> token ids with a tag id on each word's first sub-token, IGNORE_INDEX elsewhere."""
    texts = [t or "" for t in table.column("text").to_pylist()]
    if not texts:
        return Encoded([], [], 0, 0)
    ids, words, cut = tokenize(tokenizer, texts, max_seq_length)
    labels = []
    for row_ids, row_words, spans in zip(ids, words, table.column("spans").to_pylist(), strict=True):
        unknown = sorted({s["label"] for s in spans} - {tag[2:] for tag in label2id})
        if unknown:
            raise InputError(f"entity type(s) {', '.join(unknown[:10])} are not among the model's types",
                             "every split's entity types must be in the training split")
        row = [IGNORE_INDEX] * len(row_ids)
        for (token, _, _), tag in zip(row_words, word_tags(row_words, spans), strict=True):
            row[token] = label2id[tag]
        labels.append(row)
    return Encoded(ids, labels, truncated=cut, dropped=0)


def entities(text: str, words: Words, probabilities: np.ndarray, id2label: dict[int, str]) -> list[dict[str, Any]]:
    """Spans {start, end, label, text, score} read from per-word tag probabilities [words, tags]."""
    if not words:
        return []
    best = probabilities.argmax(axis=1)
    tags = [id2label[int(i)] for i in best]
    out = []
    for first, end, kind in bio.entities(tags):
        start, stop = words[first][1], words[end - 1][2]
        score = float(probabilities[np.arange(first, end), best[first:end]].mean())
        out.append({"start": start, "end": stop, "label": kind, "text": text[start:stop], "score": score})
    return out


def validation_metrics(expected: list[list[int]], predicted: list[list[int]], id2label: dict[int, str]
                       ) -> dict[str, float]:
    """Entity micro F1 (strict: type and both word boundaries equal) and word accuracy over the tagged words."""
    counts = np.zeros(3, dtype=np.int64)
    right = total = 0
    for gold, guess in zip(expected, predicted, strict=True):
        keep = [i for i, g in enumerate(gold) if g != IGNORE_INDEX]
        gold_tags = [id2label[gold[i]] for i in keep]
        guess_tags = [id2label[guess[i]] for i in keep]
        right += sum(a == b for a, b in zip(gold_tags, guess_tags, strict=True))
        total += len(keep)
        for tp, fp, fn in bio.strict_counts(bio.entities(gold_tags), bio.entities(guess_tags)).values():
            counts += (tp, fp, fn)
    return {"val_accuracy": right / max(total, 1), "val_f1": bio.f1(*counts)}
