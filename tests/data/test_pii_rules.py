"""De-identification never corrupts the data: each damage case seen on real data, as a test.

Labels, group values and metadata are never rewritten; placeholders survive whole; business identifiers,
currencies and bare order numbers are not personal data; a value is treated the same in every field of a record;
the allow and deny lists and the profiles do what docs/pii.md says.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from tunelab.data import import_data, prepare
from tunelab.data.pii import apply_pii, find_pii
from tunelab.data.pii_recognizers import PROFILES
from tunelab.data.pii_rules import (
    PiiSpan,
    Rules,
    plausible_card,
    plausible_phone,
    propagate,
    protected_regions,
    remap_offset,
)
from tunelab.data.prep_config import PrepConfig
from tunelab.data.versions import read_splits
from tunelab.errors import InputError

EXAMPLES = Path(__file__).parents[2] / "examples"
PLACEHOLDER = re.compile(r"\{\{[^{}]+\}\}")


def _redact(text: str, profile: str = "default", **rules) -> str:
    (spans,) = find_pii([text], entities=PROFILES[profile], workers=1,
                        rules=Rules(keep_coarse=profile == "hipaa-safe-harbor", **rules))
    return apply_pii(text, spans, "redact")


def _prepared(store, tmp_path: Path, rows: list[dict], **pii) -> dict[str, list[dict]]:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    raw = import_data(store, [str(path)], name="rows").version
    cfg = PrepConfig.model_validate({"dedup": {"near": False}, "leakage": {"enabled": False},
                                     "split": {"enabled": False}, "pii": pii})
    return {s: t.to_pylist() for s, t in read_splits(prepare(store, raw.id, cfg)).items()}


# --------------------------------------------------------------------------------------- scope


def test_labels_group_values_and_metadata_are_never_rewritten(store, tmp_path):
    labels = ["fiat_currency_support", "change_pin", "Paris", "John Smith", "call 415-555-2671"]
    rows = [{"text": f"Hi, this is Anna Berg, ticket {i} about my card", "label": labels[i % 5],
             "customer": "Anna Berg", "agent": "jon.whitmore@example.com"} for i in range(20)]
    out = _prepared(store, tmp_path, rows, action="redact")["train"]
    assert sorted({r["label"] for r in out}) == sorted(labels)
    assert {r["customer"] for r in out} == {"Anna Berg"}, "metadata and group values are left alone"
    assert {r["agent"] for r in out} == {"jon.whitmore@example.com"}
    assert all("Anna Berg" not in r["text"] for r in out), "the free text is de-identified"


def test_named_metadata_columns_are_de_identified_and_pseudonymised_on_request(store, tmp_path):
    rows = [{"text": f"Question {i} about delivery", "label": "x", "notes": "agent: jon.whitmore@example.com",
             "customer": "cust-7"} for i in range(5)]
    out = _prepared(store, tmp_path, rows, columns=["notes"], pseudonymize=["customer"])["train"]
    assert {r["notes"] for r in out} == {"agent: <EMAIL_ADDRESS>"}
    (digest,) = {r["customer"] for r in out}
    assert digest.startswith("g-") and digest != "cust-7"


def test_asking_to_de_identify_the_label_is_refused(store, tmp_path):
    with pytest.raises(InputError, match="annotations"):
        _prepared(store, tmp_path, [{"text": "a", "label": "b"}], columns=["label"])


# --------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("placeholder", ["{{Website Name}}", "{{Customer Support Phone Number}}", "{name}",
                                         "<PERSON>", "[Customer Name]", "%s", "%(user)s", "${AGENT}", "*****"])
def test_placeholders_are_left_whole(placeholder):
    text = f"Log into your {placeholder} account, then ask Jonathan Whitmore for help."
    redacted = _redact(text)
    assert placeholder in redacted and "Jonathan Whitmore" not in redacted


def test_bundled_support_set_keeps_every_placeholder(store):
    raw = import_data(store, [str(EXAMPLES / "customer_support" / "customer_support.csv")],
                      mapping={"response": "output"}, name="support").version
    before = [PLACEHOLDER.findall(r["output"]) for t in read_splits(raw).values() for r in t.to_pylist()]
    cfg = PrepConfig.model_validate({"dedup": {"exact": False, "near": False}, "split": {"enabled": False},
                                     "leakage": {"enabled": False}})
    prepared = prepare(store, raw.id, cfg)
    after = [r["output"] for t in read_splits(prepared).values() for r in t.to_pylist()]
    assert [PLACEHOLDER.findall(t) for t in after] == before
    assert not any(re.search(r"\{<|>\}", t) for t in after), "no placeholder is cut into"


def test_a_span_never_cuts_a_word():
    spans = find_pii(["Contact annaberg@example.com or visit shop.example.com/orders today"], workers=1)[0]
    text = "Contact annaberg@example.com or visit shop.example.com/orders today"
    for span in spans:
        assert span.start == 0 or not text[span.start - 1].isalnum()
        assert span.end == len(text) or not text[span.end].isalnum()


def test_the_same_value_is_treated_the_same_in_every_field():
    texts = ["Please update the account of Jonathan Whitmore", "Done: Jonathan Whitmore now has a new plan."]
    spans = [[PiiSpan("PERSON", 29, 46, 0.85)], []]
    moved = propagate(texts, spans)
    assert [apply_pii(t, s, "redact") for t, s in zip(texts, moved, strict=True)] == [
        "Please update the account of <PERSON>", "Done: <PERSON> now has a new plan."]


def test_an_instruction_and_its_reply_agree(store, tmp_path):
    rows = [{"instruction": f"Order {i}: please ship it to Jonathan Whitmore, order 480012345678",
             "output": f"Sure, Jonathan Whitmore, order 480012345678 ({i}) ships today."} for i in range(4)]
    out = _prepared(store, tmp_path, rows)["train"]
    assert all("Jonathan Whitmore" not in r["instruction"] + r["output"] for r in out)
    assert all("480012345678" in r["instruction"] and "480012345678" in r["output"] for r in out)


# --------------------------------------------------------------------------------------- precision


@pytest.mark.parametrize("text", ["My order ORD877088 for the blue jacket has not arrived",
                                  "1. Start by logging into your {{Website Name}} account.\n2. Locate the {{Order "
                                  "Details}} section.\n3. Click on it and follow the on-screen instructions.",
                                  "2 win orig Arcade game, text 3 say hello coz haven seen u",
                                  "Where is SKU-12A993? I ordered it twice",
                                  "Can you help me canceling purchase 00004587345?",
                                  "My order number is 480012345678 and it is late",
                                  "I was charged 500 euros instead of 50 EUR",
                                  "Can I pay in USD or in Japanese yen?"])
def test_business_text_without_personal_data_is_unchanged(text):
    assert _redact(text) == text


@pytest.mark.parametrize(("value", "before", "expected"), [
    ("(415) 555-2671", "", True), ("+44 20 7946 0958", "", True), ("020 7946 0958", "", True),
    ("212-511-5896x096", "", True), ("4155552671", "call me on ", True), ("4155552671", "order ", False),
    ("480012345678", "call me on ", False), ("00004587345", "phone ", False), ("ORD8770881", "tel ", False)])
def test_a_phone_number_must_look_like_one(value, before, expected):
    assert plausible_phone(value, before) is expected


def test_a_card_number_needs_a_length_its_brand_issues():
    assert plausible_card("4111 1111 1111 1111") and plausible_card("378282246310005")
    assert not plausible_card("4111 1111 1111 11") and not plausible_card("378282246310")


# --------------------------------------------------------------------------------------- config


def test_allow_and_deny_lists():
    text = "Ask Jonathan Whitmore about Project Falcon and ticket ACC-20931."
    redacted = _redact(text, allow=("Jonathan Whitmore",), deny=("project falcon", r"re:ACC-\d{5}"))
    assert redacted == "Ask Jonathan Whitmore about <CUSTOM> and ticket <CUSTOM>."


def test_a_bad_regular_expression_names_the_key():
    with pytest.raises(InputError, match=r"pii.deny: 're:\(' is not a valid regular expression"):
        Rules(deny=("re:(",))


def test_profiles_decide_what_goes():
    text = "Born 3 March 1961 in Springfield, Texas; lives at 12 Baker Street, ZIP 73301, member ORD877088 in 2020."
    assert "Springfield" in _redact(text) and "ORD877088" in _redact(text) and "Baker" not in _redact(text)
    hipaa = _redact(text, "hipaa-safe-harbor")
    assert "Springfield" not in hipaa and "Texas" in hipaa and "2020" in hipaa
    assert "3 March 1961" not in hipaa and "73301" not in hipaa and "ORD877088" not in hipaa
    strict = _redact(text, "strict")
    assert "Texas" not in strict and "Springfield" not in strict


def test_protected_regions_cover_placeholders_not_emails():
    text = "{{Order Number}} <jane@example.com> [Name] <https://x.org> {\"email\": \"a@b.co\"}"
    covered = [text[a:b] for a, b in protected_regions(text)]
    assert covered == ["{{Order Number}}", "[Name]"]


def test_annotation_offsets_follow_a_redaction():
    # "Call Jonathan Whitmore about order 77" -> "Call <PERSON> about order 77": 17 characters become 8.
    edits = [(5, 22, 8)]
    assert remap_offset(29, edits, "start") == 20 and remap_offset(37, edits, "end") == 28
    assert remap_offset(5, edits, "start") == 5 and remap_offset(22, edits, "end") == 13
    assert remap_offset(10, edits, "start") == 5 and remap_offset(10, edits, "end") == 13


# --------------------------------------------------------------------------------------- engines


def test_tunelab_model_finds_lower_case_names_and_leaves_commands_alone():
    texts = ["thanks priya, see you monday", "hey its rahul, call me later", "cancel alarm for tomorrow",
             "reset alarm"]
    found = find_pii(texts, entities=["PERSON"], workers=1, ner_engine="tunelab")
    assert [[t[s.start:s.end] for s in spans] for t, spans in zip(texts, found, strict=True)] == [
        ["priya"], ["rahul"], [], []]


@pytest.mark.parametrize("engine", ["tunelab", "spacy-sm"])
def test_both_engines_find_a_plain_name(engine):
    (spans,) = find_pii(["Please call Jonathan Whitmore back today"], entities=["PERSON"], workers=1,
                        ner_engine=engine)
    assert [(s.entity, s.start, s.end, s.ner) for s in spans] == [("PERSON", 12, 29, True)]


def test_an_unknown_engine_is_an_input_error():
    with pytest.raises(InputError, match="unknown NER engine 'large'"):
        find_pii(["x"], workers=1, ner_engine="large")


def test_token_classification_spans_move_with_the_redaction(store, tmp_path):
    text = "Jonathan Whitmore wants a table in Paris for 4 people, call +44 20 7946 0958"
    spans = [{"start": 35, "end": 40, "label": "city"}, {"start": 45, "end": 46, "label": "party_size"}]
    rows = [{"text": text, "spans": spans}]
    (row,) = _prepared(store, tmp_path, rows)["train"]
    assert row["text"] == "<PERSON> wants a table in Paris for 4 people, call <PHONE_NUMBER>"
    assert [(row["text"][s["start"]:s["end"]], s["label"]) for s in row["spans"]] == [("Paris", "city"),
                                                                                     ("4", "party_size")]
