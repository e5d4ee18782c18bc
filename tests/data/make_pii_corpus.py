"""Generate tests/data/pii_corpus.jsonl: synthetic texts with exact, labelled PII spans.

Run `.venv/bin/python tests/data/make_pii_corpus.py` to regenerate; the output is deterministic (seeded Faker
and random). Each line is {"text": ..., "entities": [{"type", "start", "end"}]}, types from ENTITY_TYPES.

Annotation guide (what the gold spans hold):
- PERSON: a person's name as written (first name alone, first + last, with a title); never user names.
- LOCATION: cities, states, countries; not zip codes.
- STREET_ADDRESS: the street part of an address (number, street, unit) as one span, in seven locales.
- EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, IP_ADDRESS, US_SSN, URL: the whole value as written.
Order numbers, prices, dates, versions, last-4 digits, user names and company names are not labelled.
US phone numbers get an area code in service and UK ones are mobiles (see us_phone, uk_mobile): Faker's own
numbers mostly fall in unassigned or fictional ranges that a validating detector rightly rejects.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from faker import Faker

SEED = 20261125
N_RECORDS = 450
OUT = Path(__file__).with_name("pii_corpus.jsonl")
NAME_LOCALES = ["en_US"] * 5 + ["en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR"]
PLACE_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "pl_PL"]  # it_IT cities vary with the hash seed
IBAN_LOCALES = ["de_DE", "fr_FR", "es_ES", "it_IT", "en_GB", "nl_NL", "pl_PL"]
PHONE_LOCALES = ["en_US"] * 6 + ["en_GB", "de_DE", "fr_FR"]

rng = random.Random(SEED)
fakers: dict[str, Faker] = {}


def fake(locale: str = "en_US") -> Faker:
    if locale not in fakers:
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(SEED + len(fakers))
    return fakers[locale]


# ------------------------------------------------------------------------------------------ values


def person() -> str:
    f = fake(rng.choice(NAME_LOCALES))
    roll = rng.random()
    if roll < 0.1:
        return f"{rng.choice(['Mr.', 'Ms.', 'Dr.', 'Mrs.'])} {f.last_name()}"
    return f"{f.first_name()} {f.last_name()}"


def first_name() -> str:
    return fake(rng.choice(NAME_LOCALES)).first_name()


def email() -> str:
    f = fake()
    roll = rng.random()
    if roll < 0.3:
        return f.free_email()
    if roll < 0.5:
        return f.company_email()
    if roll < 0.75:
        return f"{f.first_name()}.{f.last_name()}@{f.domain_name()}".lower()
    return f.email()


# Area codes in service (big cities across the US). Faker draws any three digits, and most of those are not in
# service, so no validator accepts them; real numbers always carry a real area code.
AREA_CODES = ["201", "202", "206", "212", "213", "214", "215", "216", "248", "267", "301", "303", "305", "312",
              "313", "314", "317", "347", "404", "408", "412", "414", "415", "469", "480", "502", "503", "504",
              "512", "602", "612", "614", "615", "617", "619", "646", "650", "702", "703", "713", "718", "801",
              "818", "858", "904", "916", "917", "919"]


def us_phone() -> str:
    """Faker's en_US formats (dots, dashes, brackets, +1, 001, extensions) with a real area code."""
    while True:
        number = fake().phone_number()
        digits = [m.start() for m in re.finditer(r"\d", number.split("x")[0])]
        first = digits[-10]  # first digit of the area code
        if number[digits[-7]] in "23456789":  # exchange codes start with 2-9
            return number[:first] + rng.choice(AREA_CODES) + number[first + 3:]


def uk_mobile() -> str:
    """Faker's UK numbers all come from Ofcom's fictional drama ranges; use mobile numbers instead."""
    rest = f"{rng.choice('4589')}{rng.randint(0, 99):02d} {rng.randint(0, 999999):06d}"
    return rng.choice([f"07{rest}", f"+44 7{rest}", f"07{rest}".replace(" ", "")])


def phone() -> str:
    locale = rng.choice(PHONE_LOCALES)
    if locale == "en_GB":
        return uk_mobile()
    return us_phone() if locale == "en_US" else fake(locale).phone_number()


def card() -> str:
    number = fake().credit_card_number()
    if len(number) == 16 and rng.random() < 0.4:
        sep = rng.choice([" ", "-"])
        return sep.join(number[i:i + 4] for i in range(0, 16, 4))
    return number


def iban() -> str:
    value = fake(rng.choice(IBAN_LOCALES)).iban()
    if rng.random() < 0.35:
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def ip() -> str:
    roll = rng.random()
    if roll < 0.55:
        return fake().ipv4_public()
    if roll < 0.75:
        return fake().ipv4_private()
    return fake().ipv6()


def ssn() -> str:
    value = fake().ssn()
    return value.replace("-", " ") if rng.random() < 0.15 else value


def url() -> str:
    f = fake()
    roll = rng.random()
    if roll < 0.35:
        return f.url()
    if roll < 0.75:
        return f.uri()
    return f"www.{f.domain_name()}/{f.uri_path()}"


def city() -> str:
    return fake(rng.choice(PLACE_LOCALES)).city()


def state() -> str:
    return fake().state()


def country() -> str:
    return fake().country()


def street() -> str:
    return fake(rng.choice(PLACE_LOCALES)).street_address().replace("\n", ", ")


def place() -> str:
    return rng.choice([city, city, state, country])()


# ------------------------------------------------------------------------------------------ templates
# A template returns a list of parts: plain strings, or (TYPE, value) tuples that become labelled spans.

def n(lo: int, hi: int) -> str:
    return str(rng.randint(lo, hi))


def date() -> str:  # Faker's date() depends on today's date, which would break determinism
    return f"{rng.randint(1950, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def clock() -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"


def money() -> str:
    return f"{rng.randint(5, 2500)}.{rng.randint(0, 99):02d}"


TEMPLATES_PII = [
    lambda: [f"Ticket #{n(10000, 99999)}: ", ("PERSON", person()), " (", ("EMAIL_ADDRESS", email()),
             ") can't log in since the last update."],
    lambda: ["Hi ", ("PERSON", first_name()), ", thanks for reaching out! We sent the reset link to ",
             ("EMAIL_ADDRESS", email()), "."],
    lambda: ["Please call me back on ", ("PHONE_NUMBER", phone()), ", I'm available after 5pm."],
    lambda: ["Customer ", ("PERSON", person()), " called from ", ("PHONE_NUMBER", phone()),
             f" about order #{n(100000, 999999)}."],
    lambda: ["Name: ", ("PERSON", person()), "\nEmail: ", ("EMAIL_ADDRESS", email()), "\nPhone: ",
             ("PHONE_NUMBER", phone()), "\nCity: ", ("LOCATION", city())],
    lambda: ["Best regards,\n", ("PERSON", person()), f"\n{fake().job()}, {fake().company()}\nTel: ",
             ("PHONE_NUMBER", phone()), "\n", ("URL", url())],
    lambda: [f"Charge it to my {rng.choice(['card', 'Visa', 'credit card', 'Mastercard'])} ",
             ("CREDIT_CARD", card()), f" please, billing zip {fake().postcode()}."],
    lambda: ["Your payment with card ", ("CREDIT_CARD", card()), " was declined. Contact us at ",
             ("EMAIL_ADDRESS", email()), "."],
    lambda: [f"Refund of ${money()} will go to IBAN ", ("IBAN_CODE", iban()), ", account holder ",
             ("PERSON", person()), "."],
    lambda: ["New payee added: ", ("PERSON", person()), ", ", ("IBAN_CODE", iban()), "."],
    lambda: [f"Login attempt for {fake().user_name()} from ", ("IP_ADDRESS", ip()), " blocked after 5 failures."],
    lambda: ["Firewall: dropped packets from ", ("IP_ADDRESS", ip()), " to ", ("IP_ADDRESS", ip()),
             f" on port {n(20, 65000)}."],
    lambda: ["The VPN handed out ", ("IP_ADDRESS", fake().ipv6()), " but the DNS record still points to ",
             ("IP_ADDRESS", fake().ipv4_public()), "."],
    lambda: ["Employee record - ", ("PERSON", person()), ", SSN ", ("US_SSN", ssn()),
             f", start date {date()}."],
    lambda: ["For verification: SSN: ", ("US_SSN", ssn()), f" DOB: {date()}"],
    lambda: ["Our docs moved to ", ("URL", url()), "; the old page ", ("URL", url()), " now redirects."],
    lambda: ["check this out ", ("URL", url()), " lol"],
    lambda: [("PERSON", person()), " and ", ("PERSON", person()), " are flying from ", ("LOCATION", city()),
             " to ", ("LOCATION", city()), f" on {fake().day_of_week()}."],
    lambda: ["I moved from ", ("LOCATION", city()), ", ", ("LOCATION", state()), " to ", ("LOCATION", country()),
             " last year, please update my address."],
    lambda: ["Ship to: ", ("PERSON", person()), ", ", ("STREET_ADDRESS", street()), ", ", ("LOCATION", city()),
             f" {fake().postcode()}"],
    lambda: ["hey its ", ("PERSON", first_name()), " txt me at ", ("PHONE_NUMBER", phone()), " when ur back in ",
             ("LOCATION", city())],
    lambda: ["Dear ", ("PERSON", person()), ", your account ", ("EMAIL_ADDRESS", email()), " was accessed from ",
             ("IP_ADDRESS", ip()), " in ", ("LOCATION", country()), ". If this wasn't you, call ",
             ("PHONE_NUMBER", phone()), "."],
    lambda: ['{"name": "', ("PERSON", person()), '", "email": "', ("EMAIL_ADDRESS", email()), '", "ip": "',
             ("IP_ADDRESS", ip()), '"}'],
    lambda: ["Meeting with ", ("PERSON", person()), " at our ", ("LOCATION", city()), " office next week."],
    lambda: [("PERSON", person()), " wrote: the invoice link ", ("URL", url()), " does not open on my phone."],
    lambda: [f"Wire {n(100, 9000)} EUR to ", ("PERSON", person()), " (", ("IBAN_CODE", iban()), ") by Friday."],
    lambda: ["Welcome to ", ("LOCATION", city()), "! Reply STOP to opt out or visit ", ("URL", url())],
    lambda: ["Please remove my SSN ", ("US_SSN", ssn()), " from your marketing database. Thanks, ",
             ("PERSON", person())],
    lambda: ["Account locked for ", ("EMAIL_ADDRESS", email()), " (last seen IP ", ("IP_ADDRESS", ip()), ")."],
    lambda: ["Lost my wallet in ", ("LOCATION", place()), ", cards ", ("CREDIT_CARD", card()), " and ",
             ("CREDIT_CARD", card()), " need to be blocked."],
    lambda: [("PERSON", person()), " from ", ("LOCATION", country()), " asked about shipping to ",
             ("LOCATION", city()), "."],
    lambda: ["Tax form received. Taxpayer SSN ", ("US_SSN", ssn()), ", refund to account ", ("IBAN_CODE", iban())],
    lambda: ["I live at ", ("STREET_ADDRESS", street()), " in ", ("LOCATION", city()), ", my number is ",
             ("PHONE_NUMBER", phone())],
    lambda: ["Payment details: card ", ("CREDIT_CARD", card()), f", exp {rng.randint(1, 12):02d}/{n(27, 31)}, name ",
             ("PERSON", person())],
    lambda: ["sorry ", ("PERSON", first_name()), " cant make it, stuck in traffic near ", ("LOCATION", city())],
    lambda: ["Server ", ("IP_ADDRESS", ip()), " serves ", ("URL", url()), " and is run by ", ("PERSON", person()),
             "."],
    lambda: ["Contact ", ("EMAIL_ADDRESS", email()), " or ", ("PHONE_NUMBER", phone()), " for the ",
             ("LOCATION", state()), " branch."],
    lambda: ["SSN on file: ", ("US_SSN", ssn()), ". Please confirm the last four digits by phone."],
    lambda: ["please deliver to ", ("STREET_ADDRESS", street().lower()), ", i'm not home before 6"],
    lambda: ["Can you send the replacement to ", ("STREET_ADDRESS", street()), "? I moved to ", ("LOCATION", city()),
             " last month."],
    lambda: ["New billing address for ", ("PERSON", person()), ": ", ("STREET_ADDRESS", street()), "."],
]

TEMPLATES_CLEAN = [
    lambda: [f"Order #{n(100000, 999999)} shipped on {date()}; total ${money()}."],
    lambda: [f"Build {n(1, 9)}.{n(0, 20)}.{n(0, 30)} passed all {n(100, 4000)} tests in {n(30, 900)} seconds."],
    lambda: [f"The standup moves to {n(8, 11)}:{rng.choice(['00', '15', '30', '45'])} on {fake().day_of_week()}."],
    lambda: [f"Invoice INV-{n(1000, 99999)} for {n(1, 500)} units at ${money()} each is {n(2, 60)} days overdue."],
    lambda: [f"Temperature reached {n(18, 41)} C at {clock()}, humidity {n(10, 99)}%."],
    lambda: ["Please restart the router and wait 30 seconds before trying again."],
    lambda: ["Thanks for the quick reply, the issue is fixed now!"],
    lambda: [f"Tracking number 1Z{rng.randint(10**15, 10**16 - 1)} shows the parcel is out for delivery."],
    lambda: ["ok see u tmrw, running late lol"],
    lambda: [f"My card ending in {n(1000, 9999)} was charged twice for the same order."],
    lambda: [f"The export finished in {n(2, 59)} seconds and produced {n(1000, 99999):} rows."],
    lambda: [f"Version {n(1, 4)}.{n(0, 12)} of the app crashes when the battery is below {n(5, 20)}%."],
    lambda: [f"Our support line is open Monday to Friday, {n(8, 9)}am to {n(5, 6)}pm."],
    lambda: ["Can you resend the contract? The attachment was empty."],
    lambda: [f"Room {n(100, 499)} needs {n(2, 6)} extra chairs for the {n(1, 4)}pm workshop."],
    lambda: [f"Your reference code is {' '.join(n(1000, 9999) for _ in range(4))}, keep it for your records."],
    lambda: [f"See section {n(1, 9)}.{n(1, 9)}.{n(1, 9)} of the manual, page {n(2, 300)}."],
    lambda: [f"The file report_{n(2019, 2025)}.pdf is attached ({n(1, 9)}.{n(1, 9)} MB)."],
    lambda: [f"Boarding at {clock()}, gate B{n(1, 40)}; the flight leaves at {clock()}."],
    lambda: [f"Ask for ext. {n(100, 9999)} at the front desk, open {n(7, 9)}-{n(4, 6)} on weekdays."],
]


def record() -> dict:
    parts = rng.choice(TEMPLATES_CLEAN if rng.random() < 0.15 else TEMPLATES_PII)()
    text, entities = "", []
    for part in parts:
        if isinstance(part, tuple):
            kind, value = part
            entities.append({"type": kind, "start": len(text), "end": len(text) + len(value)})
            part = value
        text += part
    return {"text": text, "entities": entities}


def main() -> None:
    records = [record() for _ in range(N_RECORDS)]
    with OUT.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for rec in records:
        for ent in rec["entities"]:
            counts[ent["type"]] = counts.get(ent["type"], 0) + 1
    clean = sum(not rec["entities"] for rec in records)
    print(f"wrote {len(records)} records ({clean} without PII) to {OUT}")
    for kind, count in sorted(counts.items()):
        print(f"  {kind:<14} {count}")


if __name__ == "__main__":
    main()
