"""Tokenisation and batching of CUT instances (released rules, PAPER.md 1.7.8).

Each sequence is ``prompt + response`` tokenised as one text, truncated from the left to ``cutoff`` tokens so the
response stays whole, with EOS appended; the first ``len(tokenize(prompt)) - n_truncated`` tokens are masked.
An Align-N instance also gets its Misalign sequence (plain prompt, same response); the response tokens of the
two must be identical. Positives get no Misalign row at all (the released code ran an all-padding one).
Targets are aligned for the loss: ``targets[:, t]`` is the token that position t predicts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from repro.cut.logprobs import IGNORE


@dataclass
class Sequence:
    ids: list[int]
    n_masked: int  # leading tokens that are prompt (no loss)
    weights: list[float] | None = None  # per token after the prompt (0 = no loss); None: the mean over them


@dataclass
class Example:
    source_index: int
    first: Sequence  # Align-P (plain prompt) or Align-N (judgment prompt)
    misalign: Sequence | None  # negatives only

    @property
    def negative(self) -> bool:
        return self.misalign is not None


@dataclass
class CutBatch:
    input_ids: torch.Tensor  # [B + N, L]: the B first sequences, then the N Misalign sequences
    attention_mask: torch.Tensor  # [B + N, L]
    targets: torch.Tensor  # [B, L]
    misalign_targets: torch.Tensor  # [N, L]
    negative: torch.Tensor  # [B] bool
    n_examples: int
    target_weights: torch.Tensor | None = None  # [B, L]: only when some example weighs its targets itself

    def to(self, device) -> "CutBatch":
        weights = None if self.target_weights is None else self.target_weights.to(device)
        return CutBatch(self.input_ids.to(device), self.attention_mask.to(device), self.targets.to(device),
                        self.misalign_targets.to(device), self.negative.to(device), self.n_examples, weights)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def encode(tokenizer, prompt: str, response: str, cutoff: int, where: str = "") -> Sequence:
    full = tokenizer(prompt + response)["input_ids"]
    n_prompt = len(tokenizer(prompt)["input_ids"])
    n_truncated = max(0, len(full) - cutoff)
    if n_prompt - n_truncated <= 0:
        raise ValueError(f"{where}: the response ({len(full) - n_prompt} tokens) does not fit in cutoff_len "
                         f"{cutoff} after at least one prompt token; raise cutoff_len or remove the example")
    full = full[n_truncated:]
    eos = tokenizer.eos_token_id
    if not full or full[-1] != eos:
        full = full + [eos]
    return Sequence(full, n_prompt - n_truncated)


def encode_two_targets(tokenizer, instance: dict, cutoff: int, where: str) -> Sequence:
    """Forward Prediction (Eq. 1): prompt, response, a context joint, then the judgment; each target's tokens
    weigh 1/its length, so the loss is the sum of the two means. Boundaries come from tokenising the prefixes."""
    prompt, joint = instance["prompt"], instance["continuation_prompt"]
    whole = encode(tokenizer, prompt, instance["response"] + joint + instance["continuation"], cutoff, where)
    n_prompt = len(tokenizer(prompt)["input_ids"])
    n_response = len(tokenizer(prompt + instance["response"])["input_ids"]) - n_prompt
    n_joint = len(tokenizer(prompt + instance["response"] + joint)["input_ids"]) - n_prompt - n_response
    n_judgment = len(whole.ids) - whole.n_masked - n_response - n_joint
    if n_response <= 0 or n_judgment <= 0:
        raise ValueError(f"{where}: the response and the continuation each need at least one token")
    weights = [1 / n_response] * n_response + [0.0] * n_joint + [1 / n_judgment] * n_judgment
    return Sequence(whole.ids, whole.n_masked, weights)


def encode_instance(tokenizer, instance: dict, cutoff: int, where: str) -> Example:
    kind = instance.get("kind")
    if kind not in ("align_p", "align_n", "mle"):
        raise ValueError(f"{where}: field 'kind' must be 'align_p', 'align_n' or 'mle', got {kind!r} (preference "
                         "pairs train with a DPO objective)")
    if kind == "mle" and instance.get("continuation") is not None:
        return Example(int(instance["source_index"]), encode_two_targets(tokenizer, instance, cutoff, where), None)
    first = encode(tokenizer, instance["prompt"], instance["response"], cutoff, where)
    misalign = None
    if kind == "align_n":
        misalign = encode(tokenizer, instance["misalign_prompt"], instance["response"], cutoff, where)
        if first.ids[first.n_masked:] != misalign.ids[misalign.n_masked:]:
            raise ValueError(f"{where}: the response tokenises differently after the judgment prompt and after the "
                             "plain prompt, so Align-N and Misalign tokens cannot be paired")
    return Example(int(instance["source_index"]), first, misalign)


def encode_instances(tokenizer, instances: list[dict], cutoff: int, source: str = "instances") -> list[Example]:
    if not instances:
        raise ValueError(f"{source}: no training instances")
    return [encode_instance(tokenizer, inst, cutoff, f"{source}, record {i}") for i, inst in enumerate(instances)]


def _targets(seq: Sequence, length: int) -> list[int]:
    weights = seq.weights or [1.0] * (len(seq.ids) - seq.n_masked)
    labels = [IGNORE] * seq.n_masked + [t if w else IGNORE for t, w in zip(seq.ids[seq.n_masked:], weights)]
    shifted = labels[1:] + [IGNORE]  # position t predicts token t + 1
    return shifted + [IGNORE] * (length - len(shifted))


def _target_weights(seq: Sequence, length: int) -> list[float]:
    n = len(seq.ids) - seq.n_masked
    weights = [0.0] * seq.n_masked + (seq.weights or [1.0 / n] * n)
    shifted = weights[1:] + [0.0]
    return shifted + [0.0] * (length - len(shifted))


def collate(examples: list[Example], pad_id: int, pad_to_multiple_of: int = 8) -> CutBatch:
    firsts = [e.first for e in examples]
    misaligns = [e.misalign for e in examples if e.misalign is not None]
    length = max(len(s.ids) for s in firsts + misaligns)
    length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    rows = firsts + misaligns
    input_ids = torch.tensor([s.ids + [pad_id] * (length - len(s.ids)) for s in rows])
    attention = torch.tensor([[1] * len(s.ids) + [0] * (length - len(s.ids)) for s in rows])
    targets = torch.tensor([_targets(s, length) for s in firsts])
    mis_targets = torch.tensor([_targets(s, length) for s in misaligns], dtype=torch.long).reshape(-1, length)
    negative = torch.tensor([e.negative for e in examples])
    weights = None
    if any(s.weights is not None for s in firsts):
        weights = torch.tensor([_target_weights(s, length) for s in firsts], dtype=torch.float32)
    return CutBatch(input_ids, attention, targets, mis_targets, negative, len(examples), weights)
