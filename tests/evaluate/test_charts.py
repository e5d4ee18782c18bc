"""Every chart renders to a real, non-blank PNG, including with long label lists, and bad input is refused."""

from __future__ import annotations

import base64
import io

import matplotlib.image
import numpy as np
import pytest

from tunelab.errors import InputError
from tunelab.evaluate import charts
from tunelab.html import data_uri

SCORES = {
    "base": {"accuracy": 0.7, "f1_macro": 0.62, "chrf": 41.0, "accuracy_ci": [0.65, 0.75]},
    "tuned": {"accuracy": 0.86, "f1_macro": 0.8, "chrf": 55.5, "accuracy_ci": [0.82, 0.9]},
}
BINS = [{"lower": 0.5, "upper": 0.6, "confidence": 0.55, "accuracy": 0.5, "count": 10},
        {"lower": 0.8, "upper": 0.9, "confidence": 0.85, "accuracy": 0.7, "count": 30}]
MANY = [f"class with a long name {i}" for i in range(32)]  # more than MAX_LABELS

CHARTS = {
    "metric_bars": lambda: charts.metric_bars(SCORES, ["accuracy", "f1_macro", "chrf"], "Base vs tuned"),
    "metric_bars_missing_metric": lambda: charts.metric_bars(SCORES, ["accuracy", "rouge_l"], "Gap"),
    "class_deltas": lambda: charts.class_deltas({"a": {"base": 0.5, "tuned": 0.7}, "b": {"base": 0.6, "tuned": 0.4}}),
    "class_deltas_many": lambda: charts.class_deltas({c: {"base": 0.5, "tuned": i / 32} for i, c in enumerate(MANY)}),
    "class_deltas_no_change": lambda: charts.class_deltas({"a": {"base": 0.5, "tuned": 0.5}}),
    "confusion": lambda: charts.confusion([[5, 1, 0], [2, 7, 1], [0, 0, 0]], ["cat", "dog", "bird"], "Confusion"),
    "confusion_many": lambda: charts.confusion(np.eye(32, dtype=int).tolist(), MANY, "Many classes"),
    "roc": lambda: charts.curves({"base": {"fpr": [0, 0.4, 1], "tpr": [0, 0.6, 1], "roc_auc": 0.61},
                                  "tuned": {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]}}, "roc"),
    "pr": lambda: charts.curves({"tuned": {"recall": [1, 0.5, 0], "precision": [0.3, 0.8, 1]}}, "pr"),
    "reliability": lambda: charts.reliability({"base": BINS, "tuned": BINS[:1]}),
    "group_bars": lambda: charts.group_bars({"en": {"f1": 0.8, "f1_ci": [0.7, 0.9]}, "de": {"f1": 0.6}}, "f1", "Lang"),
    "group_bars_many": lambda: charts.group_bars({g: {"chrf": 50.0} for g in MANY}, "chrf", "Many groups"),
}


@pytest.mark.parametrize("name", CHARTS)
def test_chart_is_a_non_blank_png(name):
    png = CHARTS[name]()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0


def test_data_uri_round_trips():
    png = CHARTS["group_bars"]()
    uri = data_uri(png)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.removeprefix("data:image/png;base64,")) == png


def test_first_model_is_grey_and_colours_follow_position():
    colors = charts.model_colors(["base", "tuned", "other"])
    assert colors["base"] == charts.BASE_COLOR
    assert len(set(colors.values())) == 3
    assert charts.model_colors(["base", "tuned"])["tuned"] == colors["tuned"]


def test_bad_chart_input_is_refused():
    with pytest.raises(InputError, match="Unknown curve kind 'det'"):
        charts.curves({"m": {"fpr": [0, 1], "tpr": [0, 1]}}, "det")
    with pytest.raises(InputError, match=r"shape \(2, 2\) but there are 3 labels"):
        charts.confusion([[1, 0], [0, 1]], ["a", "b", "c"], "Bad")
    with pytest.raises(InputError, match="scores is empty"):
        charts.metric_bars({}, ["accuracy"], "Empty")
