"""Tokenisation and batching of training instances (the released rules, docs/fidelity.md).

Each sequence is ``prompt + response`` tokenised as one text, truncated from the left to ``cutoff`` tokens so the
response stays whole, then EOS is appended (so a truncated sequence holds cutoff + 1 tokens, as released); the
first ``len(tokenize(prompt)) - n_truncated`` tokens are masked. A response that alone fills the cutoff leaves
no prompt token: the released code keeps such an example with nothing masked (``long_responses: keep``; its
Align-N and Misalign rows are then identical, so Eq. 5 flags nothing and it trains as likelihood on the truncated
response), ``long_responses: drop`` leaves it out; either way it is counted. An Align-N instance also gets its
Misalign sequence (plain prompt, same response); the response tokens of the two must be identical. Positives get
no Misalign row at all (the released code ran an all-padding one).
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
    truncated: int = 0  # tokens cut from the left to fit the cutoff
    overlong: bool = False  # the response alone filled the cutoff: no prompt token is left, nothing is masked

    def labels(self) -> list[int]:
        """Hugging Face labels: as long as the ids, IGNORE where nothing is trained, not shifted."""
        weights = self.weights or [1.0] * (len(self.ids) - self.n_masked)
        return [IGNORE] * self.n_masked + [t if w else IGNORE for t, w in zip(self.ids[self.n_masked:], weights)]


@dataclass
class Example:
    source_index: int
    first: Sequence  # Align-P (plain prompt) or Align-N (judgment prompt)
    misalign: Sequence | None  # negatives only
    kind: str = ""

    @property
    def negative(self) -> bool:
        return self.misalign is not None

    @property
    def sequences(self) -> list[Sequence]:
        return [self.first] + ([self.misalign] if self.misalign is not None else [])

    @property
    def overlong(self) -> bool:
        return any(s.overlong for s in self.sequences)


@dataclass
class EncodedSet:
    """The examples a trainer sees, and what tokenisation did to the instances on the way."""
    examples: list[Example]
    instances: int
    dropped: list[int]  # instance positions left out (over-long responses under long_responses: drop)
    long_responses: str = "keep"
    cutoff: int = 0

    def stats(self) -> dict:
        seqs = [s for e in self.examples for s in e.sequences]
        return {"instances": self.instances, "examples": len(self.examples), "cutoff_len": self.cutoff,
                "long_responses": self.long_responses,
                "overlong_kept_truncated": sum(e.overlong for e in self.examples),
                "overlong_dropped": len(self.dropped), "dropped_positions": self.dropped,
                "prompt_truncated": sum(any(s.truncated for s in e.sequences) and not e.overlong
                                        for e in self.examples),
                "max_tokens": max((len(s.ids) for s in seqs), default=0),
                "tokens": sum(len(s.ids) for s in seqs)}


@dataclass
class CutBatch:
    input_ids: torch.Tensor  # [B + N, L]: the B first sequences, then the N Misalign sequences
    attention_mask: torch.Tensor  # [B + N, L]
    targets: torch.Tensor  # [B, L]
    misalign_targets: torch.Tensor  # [N, L]
    negative: torch.Tensor  # [B] bool
    n_examples: int
    target_weights: torch.Tensor | None = None  # [B, L]: only when some example weighs its targets itself

    def to(self, device) -> CutBatch:
        weights = None if self.target_weights is None else self.target_weights.to(device)
        return CutBatch(self.input_ids.to(device), self.attention_mask.to(device), self.targets.to(device),
                        self.misalign_targets.to(device), self.negative.to(device), self.n_examples, weights)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def pad_id(tokenizer) -> int:
    """The id padding takes (the tokenizer's pad token, else 0): padded positions are masked, so any id does."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def encode(tokenizer, prompt: str, response: str, cutoff: int) -> Sequence:
    full = tokenizer(prompt + response)["input_ids"]
    n_prompt = len(tokenizer(prompt)["input_ids"])
    n_truncated = max(0, len(full) - cutoff)
    ids = full[n_truncated:]
    eos = tokenizer.eos_token_id
    if not ids or ids[-1] != eos:
        ids = ids + [eos]
    return Sequence(ids, max(0, n_prompt - n_truncated), truncated=n_truncated, overlong=n_prompt <= n_truncated)


def encode_two_targets(tokenizer, instance: dict, cutoff: int, where: str) -> Sequence:
    """Forward Prediction (Eq. 1): prompt, response, a context joint, then the judgment; each target's tokens
    weigh 1/its length, so the loss is the sum of the two means. Boundaries come from tokenising the prefixes.
    When truncation reaches into the response, its mean runs over the tokens that are left."""
    prompt, joint = instance["prompt"], instance["continuation_prompt"]
    whole = encode(tokenizer, prompt, instance["response"] + joint + instance["continuation"], cutoff)
    n_prompt = len(tokenizer(prompt)["input_ids"])
    n_response = len(tokenizer(prompt + instance["response"])["input_ids"]) - n_prompt
    n_joint = len(tokenizer(prompt + instance["response"] + joint)["input_ids"]) - n_prompt - n_response
    n_judgment = len(whole.ids) + whole.truncated - n_prompt - n_response - n_joint
    n_response_left = n_response - max(0, whole.truncated - n_prompt)
    if n_response_left <= 0 or n_judgment <= 0:
        raise ValueError(f"{where}: the response and the continuation each need at least one token after "
                         f"truncation to cutoff_len {cutoff}")
    whole.weights = [1 / n_response_left] * n_response_left + [0.0] * n_joint + [1 / n_judgment] * n_judgment
    return whole


def encode_instance(tokenizer, instance: dict, cutoff: int, where: str) -> Example:
    kind = instance.get("kind")
    if kind not in ("align_p", "align_n", "mle"):
        raise ValueError(f"{where}: field 'kind' must be 'align_p', 'align_n' or 'mle', got {kind!r} (preference "
                         "pairs train with a DPO objective)")
    for name in ("prompt", "response") + (("misalign_prompt",) if kind == "align_n" else ()):
        if not isinstance(instance.get(name), str):
            raise ValueError(f"{where}: field '{name}' must be a string, got "
                             f"{'nothing' if name not in instance else type(instance[name]).__name__}")
    try:
        source_index = int(instance["source_index"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: field 'source_index' must be a whole number, got "
                         f"{instance.get('source_index')!r}") from None
    if kind == "mle" and instance.get("continuation") is not None:
        return Example(source_index, encode_two_targets(tokenizer, instance, cutoff, where), None, kind)
    first = encode(tokenizer, instance["prompt"], instance["response"], cutoff)
    misalign = None
    if kind == "align_n":
        misalign = encode(tokenizer, instance["misalign_prompt"], instance["response"], cutoff)
        if first.ids[first.n_masked:] != misalign.ids[misalign.n_masked:]:
            raise ValueError(f"{where}: the response tokenises differently after the judgment prompt and after the "
                             "plain prompt, so Align-N and Misalign tokens cannot be paired")
    return Example(source_index, first, misalign, kind)


def encode_instances(tokenizer, instances: list[dict], cutoff: int, source: str = "instances",
                     long_responses: str = "keep") -> EncodedSet:
    if long_responses not in ("keep", "drop"):
        raise ValueError(f"long_responses must be 'keep' or 'drop', got {long_responses!r}")
    if not instances:
        raise ValueError(f"{source}: no training instances")
    examples, dropped = [], []
    for i, instance in enumerate(instances):
        example = encode_instance(tokenizer, instance, cutoff, f"{source}, record {i}")
        if example.overlong and long_responses == "drop":
            dropped.append(i)
        else:
            examples.append(example)
    if not examples:
        raise ValueError(f"{source}: every one of the {len(instances)} instances has a response that fills "
                         f"cutoff_len {cutoff} and long_responses is 'drop': nothing left to train on")
    return EncodedSet(examples, len(instances), dropped, long_responses, cutoff)


def tokenized_row(example: Example) -> dict:
    """What the trainer sees of one instance, as `repro data tokenize` writes it."""
    mis = example.misalign
    return {"source_index": example.source_index, "kind": example.kind, "input_ids": example.first.ids,
            "labels": example.first.labels(), "misalign_input_ids": mis.ids if mis else None,
            "misalign_labels": mis.labels() if mis else None}


def _targets(seq: Sequence, length: int) -> list[int]:
    shifted = seq.labels()[1:] + [IGNORE]  # position t predicts token t + 1
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
