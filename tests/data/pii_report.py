"""Per-entity precision and recall of `find_pii` on tests/data/pii_corpus.jsonl (the table in docs/pii.md).

    .venv/bin/python tests/data/pii_report.py            # the table, with NER
    .venv/bin/python tests/data/pii_report.py --no-ner   # pattern recognizers only
    .venv/bin/python tests/data/pii_report.py --errors   # also list every miss and false alarm
    .venv/bin/python tests/data/pii_report.py --speed /work/shared/data/sms_spam/SMSSpamCollection [--no-ner]
    .venv/bin/python tests/data/pii_report.py --business [--profile P]   # rows changed on query sets
    (--engine tunelab|spacy-sm picks the NER model of any of these)

Matching rule: a predicted span is a true positive when it overlaps (shares at least one character with) a gold
span of the same entity type. Precision = matched predictions / predictions; recall = gold spans overlapped by
at least one prediction of their type / gold spans. Partial overlaps count because what matters for
de-identification is that the value gets touched at all; exact boundaries are not scored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = Path(__file__).with_name("pii_corpus.jsonl")
# The types the corpus labels (ZIP_CODE, DATE_TIME and ID_NUMBER are left to tests/data/test_pii_rules.py).
CORPUS_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "URL", "PERSON",
                "LOCATION", "STREET_ADDRESS")


@dataclass
class Score:
    entity: str
    support: int = 0  # gold spans
    predicted: int = 0
    true_pos_pred: int = 0  # predictions that overlap a gold span of the same type
    found_gold: int = 0  # gold spans overlapped by a prediction of the same type

    @property
    def precision(self) -> float:
        return self.true_pos_pred / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found_gold / self.support if self.support else 1.0


def load_corpus(path: Path = CORPUS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(records: list[dict], predictions: list[list], entities: tuple[str, ...]) -> dict[str, Score]:
    """Score predictions (lists of PiiSpan, one per record) against the gold spans, per entity type."""
    scores = {e: Score(e) for e in entities}
    for record, predicted in zip(records, predictions, strict=True):
        gold = [(g["type"], g["start"], g["end"]) for g in record["entities"] if g["type"] in scores]
        for kind, start, end in gold:
            scores[kind].support += 1
            scores[kind].found_gold += any(p.entity == kind and _overlaps((p.start, p.end), (start, end))
                                           for p in predicted)
        for p in predicted:
            if p.entity in scores:
                scores[p.entity].predicted += 1
                scores[p.entity].true_pos_pred += any(kind == p.entity and _overlaps((p.start, p.end), (s, e))
                                                      for kind, s, e in gold)
    return scores


def score_any_type(records: list[dict], predictions: list[list], entities: tuple[str, ...]) -> Score:
    """Type-blind version: does a prediction of any type touch each gold span? This is what matters when every
    type is redacted, since a city taken for a name still disappears."""
    total = Score("any type")
    for record, predicted in zip(records, predictions, strict=True):
        gold = [(g["start"], g["end"]) for g in record["entities"] if g["type"] in entities]
        total.support += len(gold)
        total.found_gold += sum(any(_overlaps((p.start, p.end), g) for p in predicted) for g in gold)
        total.predicted += len(predicted)
        total.true_pos_pred += sum(any(_overlaps((p.start, p.end), g) for g in gold) for p in predicted)
    return total


def errors(records: list[dict], predictions: list[list]) -> list[str]:
    """One line per missed gold span and per prediction that matches no gold span of its type."""
    lines = []
    for record, predicted in zip(records, predictions, strict=True):
        text = record["text"]
        for g in record["entities"]:
            if not any(p.entity == g["type"] and _overlaps((p.start, p.end), (g["start"], g["end"]))
                       for p in predicted):
                lines.append(f"MISS {g['type']:<13} {text[g['start']:g['end']]!r:<45} in {text!r}")
        for p in predicted:
            if not any(g["type"] == p.entity and _overlaps((p.start, p.end), (g["start"], g["end"]))
                       for g in record["entities"]):
                lines.append(f"FALSE {p.entity:<12} {text[p.start:p.end]!r:<45} in {text!r}")
    return sorted(lines)


def table(scores: dict[str, Score]) -> str:
    rows = ["| entity | precision | recall | support | predicted |", "|---|---:|---:|---:|---:|"]
    for s in scores.values():
        rows.append(f"| {s.entity} | {s.precision:.2f} | {s.recall:.2f} | {s.support} | {s.predicted} |")
    return "\n".join(rows)


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
BUSINESS_SETS = {  # name: (CSV file, text column); query sets in which personal data is rare
    "HWU64 assistant queries": (SHARED / "hwu64" / "train.csv", "text"),
    "SNIPS voice queries": (SHARED / "snips" / "train.csv", "text"),
    "customer-support requests (bundled)": (Path(__file__).resolve().parents[2] / "examples" / "customer_support" /
                                            "customer_support.csv", "instruction"),
}


def business(engine: str, profile: str = "default") -> None:
    """The share of rows the profile changes on query sets with little personal data, and what it changed."""
    import csv
    from collections import Counter

    from tunelab.data.pii import find_pii
    from tunelab.data.pii_recognizers import KEEPS_COARSE, PROFILES
    from tunelab.data.pii_rules import Rules

    print(f"profile {profile}, NER {engine}\n")
    print("| data | rows | rows changed | share | types |\n|---|---:|---:|---:|---|")
    for name, (path, column) in BUSINESS_SETS.items():
        if not path.exists():
            print(f"| {name} | (absent: {path}) | | | |")
            continue
        with path.open(newline="", encoding="utf-8") as f:
            texts = [row[column] for row in csv.DictReader(f)]
        spans = find_pii(texts, entities=PROFILES[profile], workers=2, ner_engine=engine,
                         rules=Rules(keep_coarse=profile in KEEPS_COARSE))
        changed = sum(bool(s) for s in spans)
        types = Counter(x.entity for found in spans for x in found).most_common()
        print(f"| {name} | {len(texts):,} | {changed:,} | {changed / len(texts):.1%} | "
              f"{', '.join(f'{t} {c}' for t, c in types)} |", flush=True)


def speed(path: Path, rows: int, use_ner: bool, workers: int | None, engine: str = "tunelab") -> None:
    """Rows per second of find_pii on the first `rows` lines of a text file (for a TSV, its last column).

    Each `workers` setting runs in a fresh process, as the CLI does: the first call includes starting up
    (imports, model, helper processes), the second shows what a long-running process gets.
    """
    if workers is None:
        for n in (1, 2):
            subprocess.run([sys.executable, __file__, "--speed", str(path), "--rows", str(rows), "--workers", str(n),
                            "--engine", engine, *([] if use_ner else ["--no-ner"])], check=True)
        return
    from tunelab.data.pii import find_pii

    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    texts = [line.split("\t")[-1] for line in lines][:rows]
    for call in ("first call", "second call"):
        start = time.perf_counter()
        find_pii(texts, use_ner=use_ner, workers=workers, ner_engine=engine)
        elapsed = time.perf_counter() - start
        print(f"{len(texts)} texts, NER {engine if use_ner else 'off'}, workers={workers}, {call:<11}: "
              f"{elapsed:5.1f} s, {len(texts) / elapsed:6,.0f} rows/s", flush=True)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from tunelab.data.pii import NER_ENTITIES, find_pii

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ner", action="store_true", help="pattern recognizers only")
    parser.add_argument("--engine", default="tunelab", help="NER engine: tunelab or spacy-sm")
    parser.add_argument("--errors", action="store_true", help="list misses and false alarms")
    parser.add_argument("--speed", type=Path, metavar="FILE", help="time find_pii on this file instead")
    parser.add_argument("--rows", type=int, default=5000, help="texts to time with --speed")
    parser.add_argument("--workers", type=int, help="with --speed: only this setting, in this process")
    parser.add_argument("--business", action="store_true", help="rows changed on query sets with little PII")
    parser.add_argument("--heldout", action="store_true", help="score the hand-written held-out set instead")
    parser.add_argument("--profile", default="default", help="with --business: the profile")
    args = parser.parse_args()
    if args.business:
        return business(args.engine, args.profile)
    if args.speed:
        return speed(args.speed, args.rows, not args.no_ner, args.workers, args.engine)
    if args.heldout:
        from heldout import load_heldout

        records = load_heldout()
    else:
        records = load_corpus()
    entities = tuple(e for e in CORPUS_TYPES if not (args.no_ner and e in NER_ENTITIES))
    predictions = find_pii([r["text"] for r in records], entities=entities, use_ner=not args.no_ner, workers=1,
                           ner_engine=args.engine)
    print(f"{len(records)} records, NER {'off' if args.no_ner else args.engine}, matching rule: same type + overlap\n")
    scores = score(records, predictions, entities)
    scores["any type"] = score_any_type(records, predictions, entities)
    print(table(scores))
    if args.errors:
        print("\n" + "\n".join(errors(records, predictions)))


if __name__ == "__main__":
    main()
