"""Presidio pattern recognizers: its own (offline e-mail check, wider card coverage) and ours for what it lacks
(street addresses, postal codes, identifier numbers), plus the entity types and the profiles that pick them.

Presidio matches patterns with IGNORECASE on; a pattern that needs capitals says so with `(?-i:...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# Every type tunelab can find. NER finds PERSON and LOCATION; the rest are patterns with checks.
ENTITY_TYPES: tuple[str, ...] = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                                 "US_SSN", "URL", "PERSON", "LOCATION", "STREET_ADDRESS", "ZIP_CODE", "DATE_TIME",
                                 "ID_NUMBER")
# Types that match broad shapes (any date, any 6-digit run): on an overlap, a specific type wins over them.
GENERIC = frozenset({"ZIP_CODE", "DATE_TIME", "ID_NUMBER"})
_DIRECT = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "URL",
           "STREET_ADDRESS")
PROFILES: dict[str, tuple[str, ...]] = {
    # Direct identifiers: who a person is and how to reach them. Cities and countries stay ("travel alerts for
    # Paris" is not about a person), as do dates and business reference numbers.
    "default": _DIRECT,
    # HIPAA Safe Harbor's identifiers that text can carry: also places smaller than a state, ZIP codes, dates
    # (years alone are kept, as are states and countries) and any other identifying number.
    "hipaa-safe-harbor": (*_DIRECT, "LOCATION", "ZIP_CODE", "DATE_TIME", "ID_NUMBER"),
    # Everything tunelab can find, with no exception for states, countries or years.
    "strict": ENTITY_TYPES,
}
# Profiles that keep what HIPAA Safe Harbor allows: countries, states and years alone.
KEEPS_COARSE = frozenset({"hipaa-safe-harbor"})

# Street suffixes of USPS Publication 28 (names and the usual abbreviations), and of other countries' addresses.
_USPS = ("alley|annex|arcade|avenue|ave|bayou|beach|bend|bluff|bottom|boulevard|blvd|branch|bridge|brook|burg|"
         "bypass|camp|canyon|cape|causeway|center|circle|cir|cliff|club|common|corner|course|court|ct|cove|creek|"
         "crescent|crest|crossing|curve|dale|dam|divide|drive|dr|estate|estates|expressway|extension|falls|ferry|"
         "field|fields|flat|flats|ford|forest|forge|fork|fort|freeway|garden|gardens|gateway|glen|green|grove|"
         "harbor|haven|heights|highway|hwy|hill|hills|hollow|inlet|island|islands|isle|junction|key|knoll|lake|"
         "lakes|landing|lane|ln|light|lights|loaf|lock|locks|lodge|loop|mall|manor|meadow|meadows|mews|mill|mills|"
         "mission|motorway|mount|mountain|mountains|neck|orchard|oval|overpass|park|parkway|pkwy|pass|passage|path|"
         "pike|pine|pines|place|pl|plain|plains|plaza|point|port|prairie|radial|ramp|ranch|rapids|rest|ridge|river|"
         "road|rd|route|row|run|shoal|shore|shores|skyway|spring|springs|spur|square|sq|squares|station|stravenue|"
         "stream|street|st|summit|terrace|ter|throughway|trace|track|trail|trl|tunnel|turnpike|underpass|union|"
         "valley|viaduct|view|villa|village|ville|vista|walk|wall|way|well|wells|close|gate|wharf|quay|rise|wynd")
_USPS_TITLE = "|".join(suffix.title() for suffix in _USPS.split("|"))
_STRONG_SUFFIX = (r"street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|court|ct|terrace|parkway|pkwy|"
                  r"highway|hwy|crescent|mews|plaza|trail|square|sq|place|pl|close|way")
# Words that come between a number and a suffix in ordinary sentences ("10 minutes walk", "3 more days"), and
# the little words that never start a street name.
_NOT_A_NAME = (r"(?!(?:the|a|an|my|your|our|their|about|of|to|for|in|on|at|and|or|with|from|by|is|are|was|more|"
               r"less|other|new|old|extra|few|minutes?|hours?|days?|weeks?|months?|years?|times?|items?|people|"
               r"miles?|km|kilometers?|blocks?|steps?|units?|pieces?|orders?)\b)")
_NAME_WORD = rf"{_NOT_A_NAME}[^\W\d_][\w'.-]*"
_UNIT = r"(?:,?\s*(?:apt|apartment|suite|ste|unit|flat|floor|fl|puerta|piso|#)\.?\s*[\w-]{1,6})?"
_END = r"(?=\s*(?:[,.;:?!)\n]|$|\s(?:in|apt|apartment|suite|puerta|piso)\b))"  # a number that ends the address
_KEYWORD = (r"rue|avenue|av\.|boulevard|bd|chemin|allée|impasse|quai|route|calle|c/|avenida|avda\.|pasaje|paseo|"
            r"rambla|ronda|vial|via|viale|camino|carrera|travesía|glorieta|carrer|piazza|corso|largo|vicolo|rua|"
            r"travessa|praça|estrada|alameda|ul\.|ulica|aleja|al\.|plac|osiedle|os\.")
_PARTICLE = r"(?:(?:de|du|des|la|le|les|del|della|dei|di|da|do|dos|das|d'|l')\s*)*"
_GERMANIC = (r"straße|strasse|str\.|gasse|allee|weg|platz|damm|chaussee|straat|laan|gracht|plein|dreef|baan|kade|"
             r"singel|steeg|markt|gade|vej|väg|gatan|-ring")
_ADDRESS_PATTERNS = (
    # 12 Baker Street, 350 fifth avenue apt 4b, 10-12 Main St.: in any case with a common suffix, ...
    ("number name suffix", rf"\b\d{{1,5}}[a-z]?(?:[-–/]\d{{1,5}})?,?\s+(?:{_NAME_WORD}\s+){{1,3}}"
                           rf"(?:{_STRONG_SUFFIX})\b\.?{_UNIT}", 0.65),
    # ... 204 Holmes Village, 922 Nixon Shores: any USPS suffix when the name is capitalised (SMS-speak such as
    # "2 win orig Arcade" or "2 GO N E WAY" is not an address)
    ("number Name Suffix", rf"(?-i:\b\d{{1,5}}[a-z]?(?:[-–/]\d{{1,5}})?,?\s+(?:{_NOT_A_NAME}[A-Z][a-z][\w'.-]*\s+)"
                           rf"{{1,3}}(?:{_USPS_TITLE})\b\.?){_UNIT}", 0.6),
    # Flat 86M, Albert Squares / studio 7, henry fork
    ("unit, street", rf"\b(?:flat|apt\.?|apartment|studio|unit|suite)\s+\d{{1,4}}[a-z]?,\s+{_NAME_WORD}"
                     rf"(?:\s+{_NAME_WORD}){{0,2}}", 0.6),
    # 12, rue de la Paix / 8 Calle de Alcalá
    ("number keyword street", rf"\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s+(?:{_KEYWORD})\s+{_PARTICLE}[^\W\d_][\w'-]*"
                              rf"(?:\s+{_PARTICLE}[^\W\d_][\w'-]*){{0,3}}", 0.65),
    # Via Roma 12, Rambla de Noé Anaya 96, ul. Kopernika 72/71, plac skargi 374
    ("keyword street number", rf"\b(?:{_KEYWORD})\s+{_PARTICLE}[^\W\d_][\w'.-]*(?:\s+{_PARTICLE}[^\W\d_][\w'.-]*)"
                              rf"{{0,3}},?\s+\d{{1,4}}(?:/\d{{1,4}})?[a-z]?{_END}{_UNIT}", 0.65),
    ("rue name", rf"(?-i:\b[Rr]ue\s+){_PARTICLE}[^\W\d_][\w'-]*", 0.6),
    # Karzstraße 65, Lange Gasse 3a, Prinsengracht 263, Raymund-Huhn-Ring 1/8
    ("germanic street number", rf"\b(?:{_NAME_WORD}\s)?[^\W\d_][\w-]*(?:{_GERMANIC})\s+\d{{1,4}}(?:/\d{{1,4}})?"
                               rf"\s?[a-z]?\b", 0.65),
    ("PO box", r"\bP\.?\s?O\.?\s?Box\s+\d{1,6}\b", 0.7),
)
_ZIP_PATTERNS = (
    ("UK postcode", r"(?-i:\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b)", 0.6),
    ("Canadian postal code", r"(?-i:\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b)", 0.6),
    ("US ZIP after a state", r"(?-i:(?<=\b[A-Z]{2}\s)\d{5}(?:-\d{4})?\b)", 0.6),
    ("5 digits before a town", r"(?-i:\b\d{5}(?=\s+[A-ZÄÖÜÉ][a-zäöüßéèà]{2,}))", 0.5),
    ("US ZIP (weak)", r"\b\d{5}(?:-\d{4})?\b", 0.2),
)
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE_PATTERNS = (  # Presidio's date patterns are numeric; people write the month out
    ("day month year", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{2,4}}\b", 0.6),
    ("month day year", rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", 0.6),
    ("month day", rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b", 0.5),
    ("day month", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b", 0.5),
)
# Nine bare digits are an SSN only right after its name (`ss# 309481175`, `SSN: 309481175`); Presidio scores them
# 0.05, and its context bonus cannot lift them over the threshold. Presidio matches with the `regex` module, whose
# look-behind may vary in width, so the span stays the number alone.
_SSN_NAMED = (r"(?<=\b(?:ssn|ss\s?#|ss\s?no\.?|social\s+security(?:\s+(?:number|no\.?|\#))?"
              r"|soc\.?\s*sec\.?(?:\s+no\.?)?)\s*(?:\#|no\.?|number|nr\.?)?(?:\s+is)?\s*[:=]?\s*)\d{9}\b")
_ID_PATTERNS = (
    # ORD877088, SKU-12A993, MRN 00123456: letters and at least three digits, or six digits and more.
    ("letters and digits", r"\b(?=[\w-]*\d[\w-]*\d[\w-]*\d)(?=[\w-]*[^\W\d_])[^\W_][\w-]{4,}\b", 0.5),
    ("long number", r"\b\d{6,}\b", 0.5),
)


def context_words(entity: str) -> list[str]:
    return {"ZIP_CODE": ["zip", "zipcode", "postal", "postcode", "post code"],
            "STREET_ADDRESS": ["address", "live", "lives", "street", "deliver", "ship"],
            "ID_NUMBER": ["id", "number", "account", "record", "mrn", "licence", "license", "member", "policy"],
            }.get(entity, [])


@functools.cache
def offline_tld() -> Any:
    """tldextract with the suffix list it bundles: its default extractor downloads the current list on first use
    (and Presidio's e-mail recognizer uses that default)."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


@functools.cache
def pattern_recognizers() -> dict[str, Callable[[], Any]]:
    """A factory per pattern entity type."""
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer import predefined_recognizers as pr

    class OfflineEmailRecognizer(pr.EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld()(pattern_text).fqdn != ""

    # Presidio's card pattern stops at 17 digits and misses the 2221-2720 Mastercard and 2131 JCB ranges: add
    # 16- and 19-digit numbers starting with 2-6, plain or grouped by four, and 15-digit JCB. Luhn still decides.
    cards = [*pr.CreditCardRecognizer.PATTERNS,
             Pattern("Card 16/19 digits (weak)", r"\b[2-6]\d{3}(?:[- ]?\d{4}){3}(?:[- ]?\d{3})?\b", 0.3),
             Pattern("JCB 15 digits (weak)", r"\b(?:2131|1800)\d{11}\b", 0.3)]

    def ours(entity: str, patterns: tuple[tuple[str, str, float], ...]) -> Callable[[], Any]:
        return lambda: PatternRecognizer(supported_entity=entity, name=f"tunelab {entity}",
                                         patterns=[Pattern(*p) for p in patterns], context=context_words(entity))

    return {
        "EMAIL_ADDRESS": OfflineEmailRecognizer,
        "PHONE_NUMBER": pr.PhoneRecognizer,
        "CREDIT_CARD": lambda: pr.CreditCardRecognizer(patterns=cards),
        "IBAN_CODE": pr.IbanRecognizer,
        "IP_ADDRESS": pr.IpRecognizer,
        "US_SSN": lambda: pr.UsSsnRecognizer(patterns=[*pr.UsSsnRecognizer.PATTERNS,
                                                        Pattern("SSN after its name", _SSN_NAMED, 0.6)]),
        "URL": pr.UrlRecognizer,
        "DATE_TIME": lambda: pr.DateRecognizer(patterns=[*pr.DateRecognizer.PATTERNS,
                                                         *(Pattern(*p) for p in _DATE_PATTERNS)]),
        "STREET_ADDRESS": ours("STREET_ADDRESS", _ADDRESS_PATTERNS),
        "ZIP_CODE": ours("ZIP_CODE", _ZIP_PATTERNS),
        "ID_NUMBER": ours("ID_NUMBER", _ID_PATTERNS),
    }
