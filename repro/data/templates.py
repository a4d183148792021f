"""The paper's prompt templates, verbatim from the released `templates/alpaca.json` (Figures 5, 6, 8, 9;
docs/method.md).

A test checks these strings byte for byte against the mirror's copy of the released file.
"""
from __future__ import annotations

PLAIN = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
JUDGMENT = (
    "Below is an instruction that describes a task. Write a response to the instruction and the response should "
    "match the corresponding judgment.\n\n### Instruction:\n{instruction}\n\n### Judgment:\n{judgment}\n\n"
    "### Response:\n"
)
RESPONSE_SPLIT = "### Response:"

# GPT-4 judgment annotation (Figure 8) and AI-judge training (Figure 9), verbatim from v4.
ANNOTATION_SYSTEM = (
    "Below is an instruction that describes a task and a potential response. Evaluate the response and provide "
    "valuable judgments to the response. If the response is perfect, please only reply with 'perfect'. Otherwise, "
    "please indicate precisely what mistakes it has."
)
ANNOTATION_USER = "### Instruction: {instruction}\n\n### Response: {response}"
AI_JUDGE = (
    "Below is an instruction-response pair. Write a judgment to evaluate the quality of this response. Then reply "
    "with 'Yes.' or 'No.' to show your decision on whether the response is perfect.\n\n### Instruction: "
    "{instruction}\n\n### Response: {response}\n\n### Judgment: {judgment} {decision}"
)


def fold_input(instruction: str, input_text: str | None) -> str:
    """The released code puts a non-empty `input` under the instruction, inside the no-input template."""
    return f"{instruction}\n{input_text}" if input_text else instruction


def plain_prompt(instruction: str, input_text: str | None = None) -> str:
    """Align-P, Misalign and inference prompt (Figures 5 and 6)."""
    return PLAIN.format(instruction=fold_input(instruction, input_text))


def judgment_prompt(instruction: str, judgment: str, input_text: str | None = None) -> str:
    """Align-N prompt (Figure 5)."""
    return JUDGMENT.format(instruction=fold_input(instruction, input_text), judgment=judgment)


# ILF's refinement prompt (Eq. 2, y_hat = LLM(x, y, j)). The paper does not give it: ours, in the
# style of the templates above.
REFINE = (
    "Below is an instruction that describes a task, a response to it, and a judgment of that response. Write an "
    "improved response that fixes every problem the judgment points out.\n\n### Instruction:\n{instruction}\n\n"
    "### Response:\n{response}\n\n### Judgment:\n{judgment}\n\n### Improved response:\n"
)


def refine_prompt(instruction: str, input_text: str | None, response: str, judgment: str) -> str:
    return REFINE.format(instruction=fold_input(instruction, input_text), response=response, judgment=judgment)


POSITIVE_JUDGMENT = "Perfect."  # what a positive judgment says (Figure 8 asks the judge to reply 'perfect')
AI_JUDGE_PROMPT = AI_JUDGE.split("{judgment}")[0]  # Figure 9 up to "### Judgment: "; the judge writes the rest


def ai_judge_prompt(instruction: str, input_text: str | None, response: str) -> str:
    return AI_JUDGE_PROMPT.format(instruction=fold_input(instruction, input_text), response=response)


def ai_judge_target(judgment: str | None) -> str:
    """Figure 9's completion for training an AI judge: the judgment, then the decision."""
    return f"{judgment or POSITIVE_JUDGMENT} {'Yes.' if judgment is None else 'No.'}"
