"""The judge prompts (Figures 8 and 9) and how a judge's text becomes a verdict."""
from __future__ import annotations

import re

from repro.data.templates import (  # noqa: F401  (the Figure 9 texts live with the other templates)
    AI_JUDGE_PROMPT,
    ANNOTATION_SYSTEM,
    ANNOTATION_USER,
    POSITIVE_JUDGMENT,
    ai_judge_prompt,
    ai_judge_target,
    fold_input,
)

_DECISION = re.compile(r"(Yes|No)\.?\s*\Z")


def annotation_messages(instruction: str, input_text: str | None, response: str) -> list[dict]:
    """Figure 8: the system content and the user content, for a chat API."""
    user = ANNOTATION_USER.format(instruction=fold_input(instruction, input_text), response=response)
    return [{"role": "system", "content": ANNOTATION_SYSTEM}, {"role": "user", "content": user}]


def annotation_text(messages: list[dict]) -> str:
    """Figure 8 as one plain-text prompt, for a local model without a chat template."""
    return f"{messages[0]['content']}\n\n{messages[1]['content']}\n\n### Judgment:\n"


def is_positive(text: str) -> bool:
    """App. A.2: a judgment is positive when it begins with "Perfect" (the prompt asks for 'perfect')."""
    return text.strip().lower().startswith("perfect")


def read_ai_judge(text: str) -> tuple[bool, str, bool]:
    """(positive, judgment, parsed): the decision is the final 'Yes.' or 'No.'; no decision counts as negative."""
    match = _DECISION.search(text.strip())
    if not match:
        return False, text.strip(), False
    return match.group(1) == "Yes", text.strip()[:match.start()].strip(), True
