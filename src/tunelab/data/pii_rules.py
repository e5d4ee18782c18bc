"""Rules that keep de-identification from damaging the data: what a detector's raw spans may and may not touch.

Detectors (Presidio's patterns, the NER model) see characters, not the structure of business text. These rules
apply what PII is and what it is not, after detection and before anything is rewritten:

- **Protected regions**: template placeholders (`{{Website Name}}`, `{name}`, `<PERSON>`, `[Customer Name]`,
  `%s`, `%(user)s`, `${VAR}`) and masks (`*****`) are never part of a span: a span that overlaps one is dropped,
  so a placeholder is neither broken (`{<PERSON>}}`) nor taken for a person.
- **Whole tokens**: a span grows to the edges of the words it touches, so redaction never cuts a word in half.
- **Precision**: a name or place holds no digits (`ORD877088` is an identifier), currency names and ISO codes are
  not places or people, a phone number must look like one (international prefix, a plausible grouping, or a
  phone word nearby), a card number must have a length its brand issues.
- **allow / deny** lists from the config: values (or `re:` regular expressions) never / always redacted.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tunelab.data.pii_recognizers import GENERIC
from tunelab.errors import InputError

NER_ENTITIES = frozenset({"PERSON", "LOCATION"})
CUSTOM = "CUSTOM"  # the entity of a deny-list match
_NAME_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "da", "no", "fi", "cs", "ro",
                             "hu", "tr", "id", "tl", "hi", "ga"})

_PLACEHOLDERS = re.compile(
    r"\{\{[^{}\n]{1,80}\}\}"  # {{Website Name}}, {{ name }}
    r"|\{%[^%\n]{1,80}%\}"  # {% if x %}
    r"|\{[A-Za-z_][\w .:-]{0,60}\}|\{\d{1,2}\}"  # {name}, {Order Number}, {0}
    r"|\$\{\w{1,60}\}"  # ${VAR}
    r"|<[A-Za-z_/][\w .-]{0,60}>"  # <PERSON>, <name>, <br/> (no @ : or / inside, so no e-mail or URL)
    r"|\[[A-Za-z_][\w .-]{0,60}\]"  # [Customer Name]
    r"|%\(\w{1,40}\)[sdifr]|%\d*\$?[sdif]\b"  # %(user)s, %s, %1$s
    r"|\*{3,}"  # a mask left by an earlier pass
)
_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")
# Words that say a bare run of digits is a phone number when they come shortly before it.
_PHONE_WORDS = re.compile(r"\b(?:phone|tel|telephone|call|calling|mobile|cell|cellphone|whatsapp|fax|sms|text|txt|"
                          r"called|ring|reach|dial|landline|contact|my number|your number|contact number)\b", re.I)
_GROUPED_PHONE = re.compile(r"^\+?\d{1,6}(?:[ .\-/]+\d{1,6}){1,5}$")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*\d{1,6}$", re.I)
_CARD_LENGTHS = (  # (IIN prefixes, lengths) by brand: Visa, Mastercard, Amex, Discover, JCB, Diners, Maestro, UnionPay
    (("4",), (13, 16, 19)),
    (("51", "52", "53", "54", "55", *map(str, range(2221, 2721))), (16,)),
    (("34", "37"), (15,)),
    (("6011", "644", "645", "646", "647", "648", "649", "65"), (16, 17, 18, 19)),
    (tuple(map(str, range(3528, 3590))), (16, 17, 18, 19)),
    (("2131", "1800"), (15,)),
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), (14, 16, 17, 18, 19)),
    (("50", "56", "57", "58", "6"), tuple(range(12, 20))),
    (("62",), (16, 17, 18, 19)),
)


@dataclass(frozen=True)
class PiiSpan:
    """One value found in a text: its type, where it is (end exclusive), how sure the detector was."""

    entity: str
    start: int
    end: int
    score: float
    ner: bool = False  # found by the NER model (ranks below every pattern match on an overlap)


@dataclass(frozen=True)
class Rules:
    """What the config adds to the built-in rules. allow and deny: a literal value (matched whole-word and
    case-insensitively) or, with the prefix `re:`, a regular expression (full match for allow, search for deny).
    keep_coarse: countries, states and years alone are not removed (HIPAA Safe Harbor allows them)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    keep_coarse: bool = False

    def __post_init__(self) -> None:
        for key, entries in (("pii.allow", self.allow), ("pii.deny", self.deny)):
            for entry in entries:
                if entry.startswith("re:"):
                    try:
                        re.compile(entry[3:])
                    except re.error as exc:
                        raise InputError(f"{key}: {entry!r} is not a valid regular expression ({exc})",
                                         "Write a Python regular expression after 're:'.") from exc
                elif not entry.strip():
                    raise InputError(f"{key}: an entry is empty", "Remove it, or give a value.")

    def allowed(self, value: str) -> bool:
        return any(p.fullmatch(value) for p in _allow_patterns(self.allow))

    def denied(self, text: str) -> list[PiiSpan]:
        return [PiiSpan(CUSTOM, m.start(), m.end(), 1.0) for p in _deny_patterns(self.deny)
                for m in p.finditer(text) if m.end() > m.start()]


@functools.cache
def _allow_patterns(entries: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [re.compile(e[3:]) if e.startswith("re:") else re.compile(re.escape(e.strip()), re.I) for e in entries]


@functools.cache
def _deny_patterns(entries: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [re.compile(e[3:]) if e.startswith("re:") else re.compile(rf"(?<!\w){re.escape(e.strip())}(?!\w)", re.I)
            for e in entries]


def protected_regions(text: str) -> list[tuple[int, int]]:
    """Placeholders and masks in `text`, sorted and non-overlapping: no span may touch them."""
    return [m.span() for m in _PLACEHOLDERS.finditer(text)]


def refine(text: str, spans: Sequence[PiiSpan], rules: Rules = Rules()) -> list[PiiSpan]:
    """The raw spans of one text made safe: whole words, off placeholders, only plausible values; plus the deny
    list's matches. Sorted, non-overlapping."""
    protected = protected_regions(text)
    kept = [s for s in (_to_word_edges(text, s) for s in spans)
            if not _touches(s, protected) and plausible(text[s.start:s.end], s.entity, text[:s.start])
            and not rules.allowed(text[s.start:s.end])
            and not (rules.keep_coarse and is_coarse(text[s.start:s.end], s.entity))]
    denied = [s for s in rules.denied(text) if not _touches(s, protected)]
    return resolve_overlaps(denied + kept)


def is_coarse(value: str, entity: str) -> bool:
    """A country, a state or province, or a year alone: what HIPAA Safe Harbor lets a record keep."""
    value = value.strip(" .,;:!?'\"")
    if entity == "DATE_TIME":
        return re.fullmatch(r"(?:19|20)\d\d", value) is not None
    return entity == "LOCATION" and value.lower() in _regions()


@functools.cache
def _regions() -> frozenset[str]:
    import pycountry

    names = {n.lower() for c in pycountry.countries for n in (c.name, getattr(c, "common_name", c.name), c.alpha_3)}
    names |= {s.name.lower() for s in pycountry.subdivisions if s.type in ("State", "Province", "Territory")}
    return frozenset(names | {"usa", "us", "u.s.", "uk", "u.k.", "america", "britain", "england", "scotland", "wales"})


def plausible(value: str, entity: str, before: str = "") -> bool:
    """Whether `value` can be a value of `entity` at all, whatever the detector's score."""
    if entity in NER_ENTITIES:
        return (not _DIGIT.search(value) and not is_currency(value) and bool(re.search(r"[^\W\d_]{2}", value))
                and (entity != "PERSON" or value.lower() != value or has_known_name(value)))
    if entity == "PHONE_NUMBER":
        return plausible_phone(value, before)
    if entity == "CREDIT_CARD":
        return plausible_card(value)
    if entity == "STREET_ADDRESS":  # words, not a number, an e-mail or a link
        return re.search(r"[^\W\d_]{2}", value) is not None and not re.search(r"@|://|www\.", value)
    return True


def has_known_name(value: str) -> bool:
    """Whether a word of `value` is a given or family name of some country. The NER model takes lower-case
    commands ("cancel alarm", "reset alarm") for names; a lower-case name ("pick up john") is still found."""
    return any(word in _names() for word in re.findall(r"[^\W\d_]+", value.lower()))


@functools.cache
def _names() -> frozenset[str]:
    """Given and family names of 45 locales (Faker's person providers, about 31,000 names)."""
    import importlib
    import pkgutil

    import faker.providers.person as people

    names: set[str] = set()
    for module in pkgutil.iter_modules(people.__path__):
        if module.name.split("_")[0] in _NAME_LANGUAGES:
            provider = importlib.import_module(f"{people.__name__}.{module.name}").Provider
            for attr in ("first_names", "last_names", "first_names_male", "first_names_female"):
                values = provider.__dict__.get(attr)
                if isinstance(values, dict | list | tuple | set):
                    names.update(v.lower() for v in values if isinstance(v, str))
    return frozenset(names)


def plausible_phone(value: str, before: str = "") -> bool:
    """A phone number (an extension aside) starts with an international prefix, or is grouped the way numbers
    are written (`(415) 555-2671`, `020 7946 0958`), or is a bare run of 10-11 digits with a phone word shortly
    before it. A bare run of digits is otherwise an order, account or reference number."""
    compact = _EXTENSION.sub("", value.strip())
    digits = re.sub(r"\D", "", compact)
    if re.search(r"[^\W\d_]", compact) or not 7 <= len(digits) <= 15 or digits.startswith("000"):
        return False
    if compact.startswith("+") or (compact.startswith("00") and not compact.isdigit()):
        return True
    if not compact.isdigit():
        return _GROUPED_PHONE.match(re.sub(r"[()]", " ", compact).strip()) is not None
    return len(digits) in (10, 11) and _PHONE_WORDS.search(before[-40:]) is not None


def plausible_card(value: str) -> bool:
    """A card number has a length that its brand (known by its first digits) issues."""
    digits = re.sub(r"\D", "", value)
    return any(digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in _CARD_LENGTHS)


@functools.cache
def _currencies() -> frozenset[str]:
    """ISO 4217 codes and currency names (pycountry), lower-cased, with their plurals and common short names."""
    import pycountry

    names = {"euro", "dollar", "pound", "yen", "yuan", "rupee", "franc", "peso", "real", "rand", "won", "lira",
             "krona", "krone", "zloty", "ruble", "rouble", "dirham", "riyal", "baht", "ringgit", "shekel",
             "us dollar", "u.s. dollar", "sterling", "pound sterling", "bitcoin", "btc", "eth", "usdt"}
    for currency in pycountry.currencies:
        names.add(currency.alpha_3.lower())
        names.add(currency.name.lower())
    return frozenset(names | {n + "s" for n in names if n.isalpha() or " " in n})


def is_currency(value: str) -> bool:
    return value.strip(" .,;:!?'\"").lower() in _currencies()


def _to_word_edges(text: str, span: PiiSpan) -> PiiSpan:
    start, end = span.start, span.end
    while start > 0 and _WORD.match(text[start - 1]) and _WORD.match(text[start]):
        start -= 1
    while end < len(text) and _WORD.match(text[end]) and _WORD.match(text[end - 1]):
        end += 1
    return span if (start, end) == (span.start, span.end) else replace(span, start=start, end=end)


def _touches(span: PiiSpan, regions: list[tuple[int, int]]) -> bool:
    i = bisect.bisect_left(regions, (span.start, span.start))
    return any(a < span.end and span.start < b for a, b in regions[max(0, i - 1):i + 1])


def resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans, sorted by start; a span overlapping one kept before it is dropped.

    The deny list wins, then specific patterns, then generic ones (a date, any long number), then NER, whatever
    the scores: Presidio gives every NER entity a flat 0.85, and the small model does tag URLs and IPv6 groups as
    names or places. Then the higher score (a validated e-mail scores 1.0, so the URL-looking domain inside it
    loses), then the longer span.
    """
    kept: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.entity != CUSTOM, s.ner or s.entity in NER_ENTITIES, s.entity in GENERIC,
                                             -s.score, s.start - s.end, s.start)):
        if all(k.end <= span.start or span.end <= k.start for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def propagate(texts: Sequence[str], spans: Sequence[list[PiiSpan]]) -> list[list[PiiSpan]]:
    """The same value gets the same treatment in every text of one record: a value found in one field (a name in
    the instruction) is also redacted where it recurs in the others (the reply), as a whole word, off
    placeholders. `texts` and `spans` are the texts of one record and what was found in each."""
    values: dict[str, PiiSpan] = {}
    for text, found in zip(texts, spans, strict=True):
        for span in found:
            values.setdefault(text[span.start:span.end], span)
    if not values:
        return [list(found) for found in spans]
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for v in sorted(values, key=len, reverse=True)))
    out = []
    for text, found in zip(texts, spans, strict=True):
        protected = protected_regions(text)
        extra = [replace(values[m.group()], start=m.start(), end=m.end())
                 for m in pattern.finditer(text)]
        extra = [s for s in extra if not _touches(s, protected)
                 and all(s.end <= f.start or f.end <= s.start for f in found)]
        out.append(sorted([*found, *extra], key=lambda s: s.start) if extra else list(found))
    return out


def remap_offset(position: int, edits: Sequence[tuple[int, int, int]], side: str) -> int:
    """Where a character offset of the original text lands after `edits` ((start, end, new length) each, sorted,
    non-overlapping) rewrote it. An offset inside a rewritten span snaps to the start of its replacement
    (side="start") or to its end (side="end"), so an annotated entity keeps covering what replaced it."""
    shift = 0
    for start, end, new_length in edits:
        if position >= end:
            shift += new_length - (end - start)
        elif position > start:
            return start + shift + (new_length if side == "end" else 0)
        else:
            break
    return position + shift
