"""Hand-written held-out PII test set (tests/data/pii_heldout.txt) and its parser.

The file is written by hand, independently of the Faker templates that produced tests/data/pii_corpus.jsonl, so
that the detector can be measured on text it was not shaped by. One record per line, in a bracket markup:

    Hi, this is [PERSON|María José Ortega], reach me on [PHONE_NUMBER|+34 612 34 56 78].

`[TYPE|value]` marks a labelled span (TYPE one of TYPES; value without `[`, `]` or `|`); any other bracket is
plain text (`[Agent Name]`, `[sic]`). `\\n` (backslash, n) is a line break inside a record. Blank lines and lines
starting with `#` are skipped. `load_heldout` returns records shaped like pii_corpus.jsonl's:
`{"text": str, "entities": [{"type", "start", "end"}]}`, with offsets into the text without the markup.

    .venv/bin/python tests/data/heldout.py            # counts per type, then checks every value
    .venv/bin/python tests/data/heldout.py --jsonl    # the records as JSON lines on stdout

The checks: every CREDIT_CARD passes Luhn, every IBAN_CODE passes mod-97, every PHONE_NUMBER is valid for some
region according to the `phonenumbers` package (skipped, with a note, when it is not installed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

HELDOUT = Path(__file__).with_name("pii_heldout.txt")

TYPES = ("PERSON", "PHONE_NUMBER", "STREET_ADDRESS", "LOCATION", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE",
         "IP_ADDRESS", "US_SSN", "URL")

# Anything that opens like a span (`[` + upper-case word + `|`) must be a whole, well-formed span.
_OPEN = re.compile(r"\[([A-Z][A-Z_]*)\|")
_SPAN = re.compile(r"\[([A-Z][A-Z_]*)\|([^\[\]|\n]*)\]")
_STRAY = re.compile(r"\[[^\[\]\n]*\|[^\[\]\n]*\]?|\|\]")


class HeldoutFormatError(ValueError):
    """Malformed markup in the held-out file; the message names the file and line."""


def parse_line(raw: str, where: str = "<line>") -> dict:
    """One marked-up line -> {"text", "entities"}. Raises HeldoutFormatError naming `where` on bad markup."""
    line = raw.replace("\\n", "\n")
    text_parts: list[str] = []
    entities: list[dict] = []
    pos = 0  # position in `line`
    out_len = 0  # length of the text built so far
    while True:
        opening = _OPEN.search(line, pos)
        if opening is None:
            break
        kind = opening.group(1)
        span = _SPAN.match(line, opening.start())
        if span is None:
            raise HeldoutFormatError(f"{where}: unclosed or malformed span starting at column {opening.start() + 1}: "
                                     f"{line[opening.start():opening.start() + 40]!r}")
        if kind not in TYPES:
            raise HeldoutFormatError(f"{where}: unknown type {kind!r} (known: {', '.join(TYPES)})")
        value = span.group(2)
        if not value.strip():
            raise HeldoutFormatError(f"{where}: empty {kind} span at column {opening.start() + 1}")
        if value != value.strip():
            raise HeldoutFormatError(f"{where}: {kind} span {value!r} has leading or trailing whitespace")
        before = line[pos:opening.start()]
        text_parts.append(before)
        out_len += len(before)
        entities.append({"type": kind, "start": out_len, "end": out_len + len(value)})
        text_parts.append(value)
        out_len += len(value)
        pos = span.end()
    text_parts.append(line[pos:])
    text = "".join(text_parts)
    stray = _STRAY.search(text)
    if stray:  # a bracket with a pipe left in the plain text: a mistyped span such as `[person|Ana]`
        raise HeldoutFormatError(f"{where}: stray span markup {stray.group(0)[:60]!r}")
    for ent in entities:
        assert text[ent["start"]:ent["end"]].strip(), ent
    return {"text": text, "entities": entities}


def load_heldout(path: str | Path = HELDOUT) -> list[dict]:
    """Every record of the held-out file, in file order, as {"text": str, "entities": [{"type", "start", "end"}]}."""
    path = Path(path)
    records = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        records.append(parse_line(raw.rstrip("\r"), where=f"{path}:{number}"))
    return records


def luhn_ok(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) < 12 or any(c not in "0123456789 -" for c in value):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# Regions tried for a national-format number (one without a leading + or 00).
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "IN", "BR", "MX", "AU", "JP", "NG", "ZA", "NL", "PL", "CA",
                 "IE", "SE", "KE", "CN", "KR", "TR", "AE", "GR", "VN", "PT", "BE", "CH", "AT", "AR", "CO", "EG",
                 "PH", "SG", "NZ", "DK", "NO", "FI", "RU", "UA", "CZ", "GH", "SA", "PK", "ID", "TH", "MY", "RO",
                 "SN", "OM", "HU", "IL")


def phone_regions(value: str) -> list[str]:
    """The regions for which `phonenumbers` says the number is valid (empty list: valid nowhere)."""
    import phonenumbers

    found = []
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            found.append(phonenumbers.region_code_for_number(number) or region)
    return sorted(set(found))


def check(records: list[dict]) -> list[str]:
    """Failures of the value checks (Luhn, mod-97, phonenumbers), one message each."""
    try:
        import phonenumbers  # noqa: F401

        have_phonenumbers = True
    except ImportError:
        have_phonenumbers = False
        print("note: phonenumbers is not installed; PHONE_NUMBER values not checked", file=sys.stderr)
    failures = []
    for index, record in enumerate(records):
        for ent in record["entities"]:
            value = record["text"][ent["start"]:ent["end"]]
            if ent["type"] == "CREDIT_CARD" and not luhn_ok(value):
                failures.append(f"record {index}: CREDIT_CARD {value!r} fails Luhn")
            elif ent["type"] == "IBAN_CODE" and not iban_ok(value):
                failures.append(f"record {index}: IBAN_CODE {value!r} fails mod-97")
            elif ent["type"] == "PHONE_NUMBER" and have_phonenumbers and not phone_regions(value):
                failures.append(f"record {index}: PHONE_NUMBER {value!r} is valid in no region")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(HELDOUT))
    parser.add_argument("--jsonl", action="store_true", help="print the records as JSON lines and stop")
    args = parser.parse_args(argv)
    records = load_heldout(args.path)
    if args.jsonl:
        for record in records:
            print(json.dumps(record, ensure_ascii=False, sort_keys=True))
        return 0
    counts = Counter(ent["type"] for record in records for ent in record["entities"])
    empty = sum(1 for record in records if not record["entities"])
    print(f"{len(records)} records, {empty} without any labelled span, {sum(counts.values())} spans")
    for kind in TYPES:
        print(f"  {kind:<15} {counts.get(kind, 0):>4}")
    failures = check(records)
    for failure in failures:
        print(failure)
    print("all values check out" if not failures else f"{len(failures)} failing values")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
