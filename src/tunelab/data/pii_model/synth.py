"""Synthetic training text for tunelab's own PII name model: tickets, e-mails, chats, forms and queries with
labelled PERSON, LOCATION and STREET_ADDRESS spans, in the token-classification shape `{text, spans}`.

Why synthetic: no labelled PII corpus can be shipped or downloaded here, and real personal data must not be. What
the small English spaCy model gets wrong on business text guides what this writes: names of many origins (40
Faker locales), lower case in chats, first names alone, middle initials, titles outside the span; addresses in the
formats of many countries; and decoys that are not personal data but look like it: order numbers and SKUs,
product and brand names, company names built from surnames, currencies, placeholders, capitalised commands.
Deterministic for a seed.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterator

from faker import Faker

NAME_LOCALES = ("en_US", "en_US", "en_GB", "en_IE", "en_IN", "en_NG", "en_KE", "en_PK", "en_NZ", "de_DE", "de_AT",
                "fr_FR", "fr_CA", "es_ES", "es_MX", "es_CO", "it_IT", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "sv_SE",
                "no_NO", "da_DK", "fi_FI", "cs_CZ", "ro_RO", "hu_HU", "tr_TR", "id_ID", "yo_NG", "ig_NG", "ha_NG",
                "zu_ZA", "tw_GH", "sw", "vi_VN", "ga_IE", "hr_HR", "sk_SK", "lt_LT")
ROMANIZED = ("ja_JP", "zh_CN")  # Latin-script names from locales whose own names are in another script
PLACE_LOCALES = ("en_US", "en_GB", "en_AU", "en_IN", "en_NZ", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL",
                 "pt_BR", "sv_SE", "da_DK")
TITLES = ("Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mr", "Ms", "Miss", "Sir", "Herr", "Frau", "Mme", "Sr.", "Sra.")
BRANDS = ("Alexa", "Siri", "Google", "Amazon", "Netflix", "Spotify", "PayPal", "Visa", "Mastercard", "iPhone 15",
          "Galaxy S23", "Tesla", "Ford Focus", "Jack Daniel's", "Dell XPS", "Apple Pay", "Venmo", "Zoom", "Slack",
          "Microsoft Teams", "Uber", "Airbnb", "Disney+", "Kindle", "PlayStation 5", "Xbox", "Nike Air Max")
PRODUCTS = ("wireless earbuds", "standing desk", "Pro plan", "Premium subscription", "gift card", "router",
            "Smart TV", "winter jacket", "coffee machine", "Family Plan", "Business Starter", "Gold membership")
PLACEHOLDERS = ("{{Customer Name}}", "{{Order Number}}", "{first_name}", "[Agent Name]", "<PERSON>", "{{Website Name}}",
                "[Customer Name]", "{name}", "<LOCATION>", "{{Account Type}}", "%s")
CURRENCIES = ("euros", "EUR", "USD", "dollars", "GBP", "pounds", "yen", "CHF", "rupees", "INR", "AUD", "pesos")
COMMANDS = ("Cancel alarm for tomorrow", "Reset my password", "Play some jazz", "Turn off the lights",
            "Check order status", "Transfer money to savings", "Top up my account", "Show my last transactions",
            "Change my PIN", "Block my card", "Set a reminder for Monday", "Order a pizza", "Book a table for two",
            "Track my parcel", "Increase the volume", "What's the weather like", "Add milk to my shopping list",
            "Why was my card declined", "How do I change my billing address", "Refund my last payment")

Part = str | tuple[str, str]  # plain text, or (label, value) for a labelled span


class Writer:
    """Draws names, places, addresses and decoys; `record()` renders one template into {text, spans}."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._fakers: dict[str, Faker] = {}
        self.seed = seed

    def fake(self, locale: str) -> Faker:
        if locale not in self._fakers:
            self._fakers[locale] = Faker(locale)
            self._fakers[locale].seed_instance(self.seed * 1000 + len(self._fakers))
        return self._fakers[locale]

    # ------------------------------------------------------------------------------ values

    def first(self) -> str:
        if self.rng.random() < 0.08:
            return self.fake(self.rng.choice(ROMANIZED)).first_romanized_name()
        return self.fake(self.rng.choice(NAME_LOCALES)).first_name()

    def last(self) -> str:
        if self.rng.random() < 0.08:
            return self.fake(self.rng.choice(ROMANIZED)).last_romanized_name()
        return self.fake(self.rng.choice(NAME_LOCALES)).last_name()

    def person(self) -> list[Part]:
        """A name as people write it: full, first alone, title + surname, with a middle initial, hyphenated."""
        style = self.rng.random()
        if style < 0.35:
            return [("PERSON", f"{self.first()} {self.last()}")]
        if style < 0.55:
            return [("PERSON", self.first())]
        if style < 0.7:
            return [f"{self.rng.choice(TITLES)} ", ("PERSON", self.last())]
        if style < 0.8:
            return [("PERSON", f"{self.first()} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {self.last()}")]
        if style < 0.9:
            return [("PERSON", f"{self.first()} {self.last()}-{self.last()}")]
        return [f"{self.rng.choice(TITLES)} ", ("PERSON", f"{self.first()} {self.last()}")]

    def city(self) -> str:
        return self.fake(self.rng.choice(PLACE_LOCALES)).city()

    def country(self) -> str:
        return self.fake("en_US").country()

    def street(self) -> str:
        return self.fake(self.rng.choice(PLACE_LOCALES)).street_address().replace("\n", ", ")

    def order(self) -> str:
        r = self.rng
        return r.choice([f"ORD{r.randint(100000, 999999)}", f"#{r.randint(10000, 99999)}",
                         f"A{r.randint(10, 99)}-{r.randint(1000, 9999)}", f"{r.randint(10**9, 10**12)}",
                         f"SKU-{r.randint(10, 99)}{r.choice('ABCXYZ')}{r.randint(100, 999)}",
                         f"INV-{r.randint(2020, 2026)}-{r.randint(1, 9999):04d}"])

    def decoy(self) -> str:
        r = self.rng
        return r.choice([r.choice(BRANDS), r.choice(PRODUCTS), self.fake("en_US").company(), r.choice(PLACEHOLDERS),
                         f"{r.randint(5, 900)} {r.choice(CURRENCIES)}", self.order(), self.fake("en_US").job()])

    def contact(self) -> str:
        """Values the pattern recognizers find (e-mail, phone, IP, SSN, URL, card, IBAN): not names, places or
        streets, which the model must learn to leave to them."""
        f = self.fake(self.rng.choice(("en_US", "en_GB", "de_DE", "fr_FR", "es_ES")))
        return self.rng.choice([f.email(), f.phone_number(), f.free_email(), f.url(), f.ipv4(), f.ipv6(),
                                self.fake("en_US").ssn(), f.credit_card_number(), f.iban(), f.user_name()])

    # ------------------------------------------------------------------------------ rendering

    def record(self) -> dict:
        parts = self.rng.choice(TEMPLATES)(self)
        lower = self.rng.random() < 0.2
        text, spans = "", []
        for part in parts:
            label, value = part if isinstance(part, tuple) else (None, part)
            value = _safe_lower(value) if lower else value
            if label:
                spans.append({"start": len(text), "end": len(text) + len(value), "label": label})
            text += value
        return {"text": text, "spans": spans}


def _safe_lower(text: str) -> str:
    """Lower case that keeps every character's offset (a few letters lower-case to two characters)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def generate(n: int, seed: int = 0) -> Iterator[dict]:
    writer = Writer(seed)
    for _ in range(n):
        yield writer.record()


def _p(w: Writer) -> list[Part]:
    return w.person()


Template = Callable[[Writer], list[Part]]
TEMPLATES: list[Template] = [
    lambda w: ["Hi, this is ", *_p(w), ", my order ", w.order(), " never arrived."],
    lambda w: ["Customer ", *_p(w), " called about ", w.decoy(), " and asked for a refund of ", w.decoy(), "."],
    lambda w: ["Name: ", *_p(w), "\nEmail: ", w.contact(), "\nCity: ", ("LOCATION", w.city())],
    lambda w: ["Best regards,\n", *_p(w), f"\n{w.fake('en_US').job()}, {w.fake('en_US').company()}\nTel: ",
               w.contact()],
    lambda w: ["thanks ", *_p(w), "! see you in ", ("LOCATION", w.city()), " next week"],
    lambda w: ["Please ship the ", w.decoy(), " to ", *_p(w), ", ", ("STREET_ADDRESS", w.street()), ", ",
               ("LOCATION", w.city()), "."],
    lambda w: ["I live at ", ("STREET_ADDRESS", w.street()), " in ", ("LOCATION", w.city()), ", call me on ",
               w.contact()],
    lambda w: ["New address for ", *_p(w), ": ", ("STREET_ADDRESS", w.street()), "."],
    lambda w: ["please deliver to ", ("STREET_ADDRESS", w.street()), ", ring twice"],
    lambda w: [*_p(w), " from ", ("LOCATION", w.country()), " wants to upgrade to the ", w.decoy(), "."],
    lambda w: ["Can ", *_p(w), " pick up the parcel at our ", ("LOCATION", w.city()), " store?"],
    lambda w: ["Meeting with ", *_p(w), " and ", *_p(w), " moved to Thursday."],
    lambda w: ["hey its ", *_p(w), " txt me when ur back from ", ("LOCATION", w.city())],
    lambda w: ["Dear ", *_p(w), ", your ", w.decoy(), " renewal is due. Reference ", w.order(), "."],
    lambda w: ["Assigned to ", *_p(w), " (", w.contact(), "). Escalate to ", *_p(w), " if unresolved."],
    lambda w: ["Patient ", *_p(w), ", born in ", ("LOCATION", w.city()), ", referred by Dr. ",
               ("PERSON", w.last()), "."],
    lambda w: ["Flight from ", ("LOCATION", w.city()), " to ", ("LOCATION", w.city()), " for ", *_p(w), " is booked."],
    lambda w: ["Our ", ("LOCATION", w.city()), " office is at ", ("STREET_ADDRESS", w.street()), "."],
    lambda w: [w.rng.choice(COMMANDS), " for ", *_p(w)],
    lambda w: ["Ask ", *_p(w), " whether ", w.decoy(), " works with ", w.decoy(), "."],
    lambda w: ["Invoice ", w.order(), " for ", w.decoy(), " was paid by ", w.fake("en_US").company(), "."],
    lambda w: ["Order ", w.order(), ": ", w.decoy(), ", ", w.decoy(), ". Total ", w.decoy(), "."],
    lambda w: [w.rng.choice(COMMANDS), "."],
    lambda w: [w.rng.choice(COMMANDS), " in ", ("LOCATION", w.city()), "?"],
    lambda w: ["Log into your ", w.rng.choice(PLACEHOLDERS), " account and contact ", w.rng.choice(PLACEHOLDERS), "."],
    lambda w: [w.rng.choice(BRANDS), " keeps crashing since the update, version ", f"{w.rng.randint(1, 20)}.",
               f"{w.rng.randint(0, 9)}"],
    lambda w: ["Hello ", w.rng.choice(PLACEHOLDERS), ", your ", w.decoy(), " ships from ", ("LOCATION", w.country()),
               "."],
    lambda w: ["The ", w.fake("en_US").company(), " team in ", ("LOCATION", w.city()), " approved ", w.order(), "."],
    lambda w: ["Login attempt from ", w.contact(), " for ", w.contact(), " blocked after 5 failures."],
    lambda w: ["Server ", w.contact(), " serves ", w.contact(), " and is run by ", *_p(w), "."],
    lambda w: ["SSN on file: ", w.contact(), ". Card ", w.contact(), " expires soon."],
    lambda w: ["Wire the refund to ", w.contact(), " by Friday, reference ", w.order(), "."],
    lambda w: ["Tel: ", w.contact(), "\nFax: ", w.contact(), "\nWeb: ", w.contact()],
    lambda w: ["check this out ", w.contact(), " lol"],
    lambda w: ["Your payment with card ", w.contact(), " was declined. Contact us at ", w.contact(), "."],
    lambda w: ["Firewall: dropped packets from ", w.contact(), " to ", w.contact(), " on port ",
               str(w.rng.randint(20, 65000)), "."],
    lambda w: ["Ship to: ", *_p(w), ", ", ("STREET_ADDRESS", w.street()), ", ", ("LOCATION", w.city()), " ",
               w.fake(w.rng.choice(PLACE_LOCALES)).postcode()],
    lambda w: ["Contact ", w.contact(), " or ", w.contact(), " for the ", ("LOCATION", w.city()), " branch."],
]


def to_spacy_examples(records: list[dict], nlp) -> list:
    """spaCy Examples from {text, spans}; spans that do not fall on token edges are snapped outward."""
    from spacy.training import Example

    examples = []
    for record in records:
        doc = nlp.make_doc(record["text"])
        ents = [doc.char_span(s["start"], s["end"], label=s["label"], alignment_mode="expand")
                for s in record["spans"]]
        entities = [(e.start_char, e.end_char, e.label_) for e in ents if e is not None]
        if len({(a, b) for a, b, _ in entities}) == len(entities) and not _overlapping(entities):
            examples.append(Example.from_dict(doc, {"entities": entities}))
    return examples


def _overlapping(entities: list[tuple[int, int, str]]) -> bool:
    ordered = sorted(entities)
    return any(a[1] > b[0] for a, b in itertools.pairwise(ordered))


def words(text: str) -> int:
    return len(re.findall(r"\S+", text))
