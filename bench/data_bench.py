"""Data-preparation benchmarks: import + normalise + exact dedup, near dedup, PII redaction.

Each figure is measured next to a peer in the same run: the same work done the way people do it without tunelab
(Hugging Face `datasets` + pandas for the pipeline, datasketch's MinHashLSH for near dedup).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

from synth import short_rows, write_jsonl

from tunelab.data import import_data, prepare
from tunelab.data.prep_config import PrepConfig
from tunelab.store import open_store
from tunelab.workspace import Workspace

ONLY_NORMALISE_AND_EXACT = {"dedup": {"near": False}, "pii": {"enabled": False}, "split": {"enabled": False},
                            "leakage": {"enabled": False}}


def _fresh_store(root: Path):
    home = root / "home"
    shutil.rmtree(home, ignore_errors=True)
    return open_store(Workspace(home=home, database_url=f"sqlite:///{home / 'tunelab.db'}"))


def tunelab_pipeline(path: Path, root: Path) -> tuple[float, int]:
    store = _fresh_store(root)
    started = time.perf_counter()
    raw = import_data(store, [str(path)]).version
    version = prepare(store, raw.id, PrepConfig.model_validate(ONLY_NORMALISE_AND_EXACT))
    return time.perf_counter() - started, version.rows


def datasets_pipeline(path: Path, root: Path) -> tuple[float, int]:
    """The usual hand-written route: load_dataset('json') -> map(normalise) -> pandas drop_duplicates."""
    import datasets

    datasets.disable_progress_bars()
    started = time.perf_counter()
    ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(root / "hf-cache"))

    def normalise(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"text": [" ".join(unicodedata.normalize("NFC", t).split()) for t in batch["text"]]}

    ds = ds.map(normalise, batched=True, batch_size=10_000)
    frame = ds.to_pandas().drop_duplicates(subset=["text"])
    return time.perf_counter() - started, len(frame)


def bench_pipeline(sizes: tuple[int, ...]) -> dict[str, Any]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            path = write_jsonl(short_rows(n), root / f"rows-{n}.jsonl")
            ours, kept = tunelab_pipeline(path, root)
            peer, peer_kept = datasets_pipeline(path, root)
            results[str(n)] = {"rows": n, "kept": kept, "peer_kept": peer_kept, "seconds": round(ours, 2),
                               "rows_per_s": round(n / ours), "peer_seconds": round(peer, 2),
                               "peer_rows_per_s": round(n / peer), "ratio": round(peer / ours, 2)}
            print(f"  import+normalise+exact dedup, {n:,} rows: {n / ours:,.0f} rows/s "
                  f"(datasets+pandas {n / peer:,.0f} rows/s, x{peer / ours:.2f})", flush=True)
    return {"setting": "JSONL of short rows (5-30 words, ~10% exact repeats); tunelab validates every record, "
                       "writes Parquet + card; peer: datasets.load_dataset('json') + map(NFC, whitespace) + "
                       "pandas.drop_duplicates, no validation", "sizes": results}


def _jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of two texts' character 5-gram sets: the ground truth MinHash estimates."""
    first, second = ({t[j: j + 5] for j in range(max(len(t) - 4, 1))} for t in (a, b))
    return len(first & second) / len(first | second)


def _datasketch_clusters(texts: list[str], threshold: float, num_perm: int) -> int:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sketches = []
    duplicates = 0
    for i, text in enumerate(texts):
        shingles = {text[j: j + 5].encode() for j in range(max(len(text) - 4, 1))}
        sketch = MinHash(num_perm=num_perm)
        sketch.update_batch(list(shingles))
        if any(sketch.jaccard(sketches[j]) >= threshold for j in lsh.query(sketch)):  # verified, as tunelab does
            duplicates += 1
        lsh.insert(i, sketch)
        sketches.append(sketch)
    return duplicates


def bench_near_dedup(sizes: tuple[int, ...], peer_sizes: tuple[int, ...]) -> dict[str, Any]:
    from tunelab.data import minhash

    results = {}
    for n in sizes:
        texts = [r["text"].lower() for r in short_rows(n, seed=1, duplicate_share=0.0)]
        # near duplicates: every 20th row is the row before it with one word changed
        for i in range(20, n, 20):
            words = texts[i - 1].split()
            words[len(words) // 2] = "changed"
            texts[i] = " ".join(words)
        started = time.perf_counter()
        groups = minhash.clusters(minhash.signatures(texts, 128), 0.85)
        ours = time.perf_counter() - started
        entry = {"rows": n, "seconds": round(ours, 2), "planted_pairs": len(range(20, n, 20)),
                 "planted_pairs_at_threshold": sum(_jaccard(texts[i - 1], texts[i]) >= 0.85 for i in range(20, n, 20)),
                 "duplicates_found": sum(len(g) - 1 for g in groups)}
        line = f"  near dedup, {n:,} rows: {ours:.1f} s"
        if n in peer_sizes:
            started = time.perf_counter()
            entry["peer_duplicates_found"] = _datasketch_clusters(texts, 0.85, 128)
            peer = time.perf_counter() - started
            entry.update(peer_seconds=round(peer, 2), ratio=round(peer / ours, 2))
            line += f" (datasketch MinHashLSH {peer:.1f} s, x{peer / ours:.1f})"
        results[str(n)] = entry
        print(line, flush=True)
    return {"setting": "MinHash 128 permutations over character 5-grams, Jaccard threshold 0.85, 1 in 20 rows a "
                       "one-word variant of the row before it (planted pairs; a short row's variant can fall below "
                       "the threshold); candidates verified by estimated Jaccard in both; peer: datasketch "
                       "MinHash.update_batch + MinHashLSH "
                       "insert/query in Python", "sizes": results}


def bench_pii(n: int) -> dict[str, Any]:
    """PII detection speed: patterns only, then each NER engine, all 13 types (the strict profile's work)."""
    from tunelab.data.pii import find_pii

    sms = Path(__file__).resolve().parents[1] / "examples" / "sms_spam" / "SMSSpamCollection"
    lines = sms.read_text(encoding="utf-8").splitlines()[1:]
    texts = [lines[i % len(lines)].split("\t", 1)[1] for i in range(n)]
    results = {}
    for name, engine in (("without_ner", None), ("with_ner", "tunelab"), ("with_spacy_sm", "spacy-sm")):
        settings = {"use_ner": engine is not None, "ner_engine": engine or "tunelab", "workers": os.cpu_count() or 1}
        find_pii(texts[:50], **settings)  # load models outside the clock
        started = time.perf_counter()
        find_pii(texts, **settings)
        seconds = time.perf_counter() - started
        results[name] = {"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds)}
        print(f"  PII detection, NER {engine or 'off'}, {n:,} SMS: {n / seconds:,.0f} rows/s", flush=True)
    return {"setting": f"real SMS texts, all 13 entity types, Presidio patterns + NER (with_ner: tunelab's own "
                       f"model; with_spacy_sm: en_core_web_sm), {os.cpu_count()} worker processes", **results}
