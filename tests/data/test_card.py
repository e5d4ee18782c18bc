"""The dataset card: one self-contained HTML file with embedded PNG charts and escaped user data."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tunelab.data.card import write_card
from tunelab.data.versions import table_from_rows
from tunelab.records import DatasetVersion

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = [{"name": "import", "rows_in": 10, "rows_out": 9},
         {"name": "dedup_exact", "rows_in": 9, "rows_out": 7, "clusters": [[1, 2]]}]


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def _classification(tmp_path: Path, steps: list[dict] | None = None) -> tuple[DatasetVersion, dict]:
    train = [{"text": f"this is example number {i}", "label": "positive" if i % 3 else "negative"} for i in range(5)]
    test = [{"text": "hello <script>alert(1)</script> & bye", "label": "positive"},
            {"text": "short one", "label": "negative"}]  # <= 5 rows, so every row is in the samples
    tables = {"train": table_from_rows(train, "classification", ["text", "label"]),
              "test": table_from_rows(test, "classification", ["text", "label"])}
    version = DatasetVersion(id="ds-test", name="t", kind="classification", path=str(tmp_path),
                             splits={s: t.num_rows for s, t in tables.items()}, steps=steps or STEPS,
                             sources=[{"file": "raw.csv", "sha256": "ab" * 32, "split": None}])
    return version, tables


def test_classification_card_has_three_charts_labels_steps_and_escapes_rows(tmp_path):
    version, tables = _classification(tmp_path)

    path = write_card(version, tables)

    assert path == tmp_path / "card.html" and path.is_file()
    html = path.read_text(encoding="utf-8")
    images = _images(html)
    assert len(images) == 3
    assert all(image.startswith(PNG_SIGNATURE) and len(image) > 1000 for image in images)
    for text in ("positive", "negative", "import", "dedup_exact", "ds-test", "ab" * 32):
        assert text in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_chat_card_has_no_label_chart_and_renders_turns(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer number {i} is here"}]} for i in range(4)]
    tables = {"train": table_from_rows(rows, "chat", ["messages"])}
    version = DatasetVersion(id="ds-chat", name="c", kind="chat", path=str(tmp_path), splits={"train": 4},
                             steps=STEPS)

    html = write_card(version, tables, tmp_path / "out" / "c.html").read_text(encoding="utf-8")

    images = _images(html)
    assert len(images) == 2 and all(image.startswith(PNG_SIGNATURE) for image in images)
    assert "user: question 0" in html and "assistant: answer number 0 is here" in html


def test_huge_step_statistics_are_cut_short(tmp_path):
    steps = [{"name": "dedup_near", "rows_in": 6000, "rows_out": 1000,
              "clusters": [[i, i + 1] for i in range(5000)]}, {"name": "note", "comment": "no row counts"}]
    version, tables = _classification(tmp_path, steps)

    html = write_card(version, tables).read_text(encoding="utf-8")

    assert "4,990 more (5,000 in all)" in html
    assert "[4999, 5000]" not in html
    assert "no row counts" in html
    assert len(_images(html)) == 3
