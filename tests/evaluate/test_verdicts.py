"""The report's verdict against each base line: a loss to the prompted base is said in words and raised as a flag."""

from __future__ import annotations

from tunelab.evaluate import metrics, scoring
from tunelab.evaluate.service import flags


def _result(tuned_scores: list[float], base_scores: list[float]) -> dict:
    test = metrics.paired_bootstrap(base_scores, tuned_scores, resamples=500)
    test["metric"] = "token_f1"
    delta = sum(tuned_scores) / len(tuned_scores) - sum(base_scores) / len(base_scores)
    return {"task": "sft", "tuned": "m-1",
            "contenders": [{"key": "base:lm+3shot", "label": "lm 3-shot", "role": "base"},
                           {"key": "m-other", "label": "other", "role": "compare"},
                           {"key": "m-1", "label": "tuned", "role": "tuned"}],
            "comparisons": {"base:lm+3shot": {"deltas": {"token_f1": delta}, "test": test},
                            "m-other": {"deltas": {"token_f1": 0.0}, "test": test}}}


def test_a_clear_loss_is_said_plainly_and_flagged():
    result = _result([0.2, 0.25, 0.1, 0.3] * 10, [0.4, 0.45, 0.3, 0.5] * 10)
    result["verdicts"] = scoring.verdicts(result)
    (verdict,) = result["verdicts"]  # base lines only: a compared model is not a verdict
    assert verdict["outcome"] == "loses" and verdict["delta"] < 0 and verdict["ci"][1] < 0
    assert verdict["sentence"].startswith("The fine-tuned model loses to lm 3-shot on token_f1: -0.200 (95% CI")
    assert verdict["sentence"] in flags(result)


def test_a_win_is_not_a_flag_and_a_tie_is_not_a_win():
    win = _result([0.6, 0.5, 0.7, 0.55] * 10, [0.2, 0.25, 0.1, 0.3] * 10)
    win["verdicts"] = scoring.verdicts(win)
    assert win["verdicts"][0]["outcome"] == "wins" and not flags(win)
    tie = _result([0.2, 0.4, 0.3, 0.1], [0.3, 0.2, 0.1, 0.4])
    tie["verdicts"] = scoring.verdicts(tie)
    assert tie["verdicts"][0]["outcome"] == "no clear difference"
    assert "is not clearly better than" in flags(tie)[0]
