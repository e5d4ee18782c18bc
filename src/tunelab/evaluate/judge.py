"""Optional LLM-as-judge: any OpenAI-compatible endpoint grades each answer against its reference with one rubric.

The rubric is fixed and printed in the report, so scores from different runs mean the same thing. A reply that is not
a score from 1 to 5 counts as invalid (reported, and left out of the mean), never as a guess.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tunelab.errors import InputError
from tunelab.progress import progress_bar

RUBRIC = (
    "You grade the answer of an assistant to a customer's message against a reference answer written by an expert.\n"
    "Score from 1 to 5:\n"
    "5 = says everything the reference says that matters, nothing wrong or unsafe;\n"
    "4 = correct and helpful, a minor point missing or worded less clearly;\n"
    "3 = partly correct: useful, but a key point is missing or slightly wrong;\n"
    "2 = mostly unhelpful or with a clear error;\n"
    "1 = wrong, off-topic, empty or harmful.\n"
    "Judge the content, not the style or length. Reply with the score alone, a single digit."
)
_SCORE = re.compile(r"\b([1-5])\b")


@dataclass
class JudgeSettings:
    base_url: str  # e.g. http://127.0.0.1:8000/v1 (a `tunelab serve`, vLLM, or any OpenAI-compatible API)
    model: str
    api_key: str = "none"
    workers: int = 4  # requests in flight at once


def _ask(client: Any, settings: JudgeSettings, question: str, reference: str, answer: str) -> int | None:
    content = f"Customer message:\n{question}\n\nReference answer:\n{reference}\n\nAssistant's answer:\n{answer}"
    reply = client.chat.completions.create(model=settings.model, temperature=0, max_tokens=4,
                                           messages=[{"role": "system", "content": RUBRIC},
                                                     {"role": "user", "content": content}])
    found = _SCORE.search(reply.choices[0].message.content or "")
    return int(found.group(1)) if found else None


def judge(settings: JudgeSettings, questions: list[str], references: list[str], answers: list[str],
          label: str = "judge") -> dict[str, Any]:
    """Scores 1-5 per answer (None where the judge's reply was not a score), their mean and the invalid count."""
    from openai import OpenAI, OpenAIError

    client = OpenAI(base_url=settings.base_url, api_key=settings.api_key, max_retries=2)
    scores: list[int | None] = [None] * len(answers)
    try:
        with ThreadPoolExecutor(settings.workers) as pool, progress_bar(f"judge {label}", len(answers)) as advance:
            futures = [pool.submit(_ask, client, settings, q, r, a)
                       for q, r, a in zip(questions, references, answers, strict=True)]
            for i, future in enumerate(futures):
                scores[i] = future.result()
                advance(1)
    except OpenAIError as exc:
        raise InputError(f"the judge at {settings.base_url} (model {settings.model}) failed: {exc}",
                         "check --judge-url, --judge-model and --judge-key") from exc
    valid = [s for s in scores if s is not None]
    return {"scores": scores, "judge_score": sum(valid) / len(valid) if valid else None,
            "judge_invalid": len(scores) - len(valid)}
