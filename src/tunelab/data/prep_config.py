"""The `tunelab data prepare` config: one section per step, each with safe defaults (see docs/data.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.config import Schema


class NormalizeConfig(Schema):
    enabled: bool = Field(True, description="Unicode NFC, control characters removed, whitespace squeezed.")
    fix_mojibake: bool = Field(True, description="Repair text decoded with the wrong charset (ftfy).")


class HtmlConfig(Schema):
    enabled: bool = Field(False, description="Strip HTML tags, keeping the text.")


class MissingConfig(Schema):
    policy: Literal["drop", "fill"] = Field("drop", description="What to do with a row whose field is empty.")
    fill_value: str | None = Field(None, description="The value used by policy: fill.")
    columns: list[str] | None = Field(None, description="Columns checked (default: the shape's required fields).")


class DedupConfig(Schema):
    exact: bool = Field(True, description="Remove exact duplicates (after normalisation).")
    near: bool = Field(True, description="Remove near duplicates (MinHash LSH on character 5-grams).")
    threshold: float = Field(0.85, gt=0, le=1, description="Jaccard similarity at which two rows are near duplicates.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    conflicts: Literal["drop", "majority", "keep"] = Field(
        "drop", description="Classification duplicates with different labels: drop them all, keep the majority "
        "label, or keep the first.")


class LengthConfig(Schema):
    enabled: bool = Field(False, description="Filter rows by length in tokens.")
    tokenizer: str = Field("whitespace", description="'whitespace', or a tokenizer path or hub name.")
    min_tokens: int = Field(1, ge=0, description="Drop rows shorter than this.")
    max_tokens: int | None = Field(None, ge=1, description="Drop rows longer than this.")


class PiiConfig(Schema):
    enabled: bool = Field(True, description="Detect and de-identify personal data.")
    action: Literal["redact", "mask", "drop"] = Field("redact", description="Replace with <TYPE>, mask with *, or "
                                                      "drop the row.")
    profile: Literal["default", "hipaa-safe-harbor", "strict"] = Field(
        "default", description="Which types are removed: direct identifiers (default; cities and countries stay), "
        "HIPAA Safe Harbor's identifiers, or every type (see docs/pii.md).")
    entities: list[str] | None = Field(None, description="Entity types to find (default: the profile's).")
    allow: list[str] = Field(default_factory=list, description="Values never removed (literal, or 're:' + a "
                             "regular expression matching the whole value).")
    deny: list[str] = Field(default_factory=list, description="Values always removed, as <CUSTOM> (literal, "
                            "whole-word, or 're:' + a regular expression).")
    columns: list[str] = Field(default_factory=list, description="Metadata columns to de-identify too (free-text "
                               "fields always are; labels never).")
    pseudonymize: list[str] = Field(default_factory=list, description="Columns replaced by a keyed hash (same value, "
                                    "same hash; the key is never stored), e.g. a customer id used as group column.")
    ner: bool = Field(True, description="Use an NER model for PERSON and LOCATION (and street addresses).")
    engine: Literal["spacy-sm", "tunelab"] = Field(
        "spacy-sm", description="The NER model: spaCy's en_core_web_sm, or tunelab's own (experimental: more "
        "recall, less precision; see docs/pii.md).")
    score_threshold: float = Field(0.5, ge=0, le=1, description="Minimum detection confidence.")
    workers: int = Field(2, ge=1, description="Processes used for detection.")


class SplitConfig(Schema):
    enabled: bool = Field(True, description="Carve the missing splits out of train.")
    validation: float = Field(0.1, ge=0, lt=1, description="Fraction of rows for validation.")
    test: float = Field(0.1, ge=0, lt=1, description="Fraction of rows for test.")
    seed: int = Field(42, description="Seed of the shuffle.")
    stratify: bool = Field(True, description="Keep label proportions in each split (classification).")
    group_column: str | None = Field(None, description="Rows sharing this column's value stay in one split.")


class LeakageConfig(Schema):
    enabled: bool = Field(True, description="Remove train rows that also appear in validation, test or eval sets.")
    near: bool = Field(True, description="Also catch near duplicates, not only exact ones.")
    threshold: float = Field(0.85, gt=0, le=1, description="Jaccard similarity for a near match.")
    against: list[str] = Field(default_factory=list, description="Extra datasets to check against (ids or names); "
                               "datasets imported with --eval-set are always included.")


class PrepConfig(Schema):
    name: str | None = Field(None, description="Name of the new version (default: the parent's).")
    normalize: NormalizeConfig = NormalizeConfig()
    html: HtmlConfig = HtmlConfig()
    missing: MissingConfig = MissingConfig()
    dedup: DedupConfig = DedupConfig()
    length: LengthConfig = LengthConfig()
    pii: PiiConfig = PiiConfig()
    split: SplitConfig = SplitConfig()
    leakage: LeakageConfig = LeakageConfig()
