"""Which examples each optimiser step trains on (`training.data_order`).

seeded: epoch e is ``torch.randperm(n)`` from a generator seeded with ``seed + e``, cut into global batches; the
last batch of an epoch may be short.

released: the order of the released runs (8 processes x micro-batch 1, no gradient accumulation). The released
script trains with transformers 4.33's Trainer, which samples with ``RandomSampler(dataset)``; accelerate 0.23
gives that sampler a fresh ``torch.Generator()`` (its default seed, 67280421310721, on every process, whatever the
script's seed), so epoch e trains the (2e+1)-th ``torch.randperm(n)`` of a fresh generator (the sampler draws one
more, empty, permutation after each full one). accelerate hands the
micro-batches round-robin to the processes; one round is one optimiser step. When the last round is short, the
short micro-batch and the missing ones are filled from the start of the epoch's order ("even batches"), so the
last step of an epoch repeats its first examples (iteration 1: 358 examples, 45 steps, the last step holds the
6 remaining examples and the epoch's first 2 again).

Other batch settings emulate ``batch_size / micro_batch_size`` processes of ``micro_batch_size`` examples each,
without accumulation (the released runs' shape). The world size of our own run only decides how a global batch is
split across our processes, never which examples it holds. Assumption: ``torch.randperm`` on CPU draws the same
permutation from a given generator state as torch 2.0.1 did (not verifiable here).
"""
from __future__ import annotations

import torch


def epoch_permutation(n: int, epoch: int, data_order: str, seed: int) -> list[int]:
    if data_order == "seeded":
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    generator = torch.Generator()  # default seed, as accelerate's fresh generator
    for _ in range(2 * epoch):  # RandomSampler draws one more (empty) permutation after each full one
        torch.randperm(n, generator=generator)
    return torch.randperm(n, generator=generator).tolist()


def released_rounds(order: list[int], processes: int, micro: int) -> list[list[int]]:
    """Global batches of one epoch as accelerate 0.23 shards them (even batches, no drop_last)."""
    micro_batches = [order[i:i + micro] for i in range(0, len(order), micro)]
    refill = list(order[:processes * micro])  # the first round's indices fill a short last round
    while refill and len(refill) < processes * micro:
        refill += refill
    rounds = []
    for start in range(0, len(micro_batches), processes):
        current = micro_batches[start:start + processes]
        if len(current) < processes or len(current[-1]) < micro:
            cursor = 0
            filled = []
            for batch in current + [[] for _ in range(processes - len(current))]:
                need = micro - len(batch)
                filled.append(batch + refill[cursor:cursor + need])
                cursor += need
            current = filled
        rounds.append([index for batch in current for index in batch])
    return rounds


def global_batch(step: int, n_examples: int, training, steps_per_epoch: int) -> list[int]:
    """Example indices of one optimiser step."""
    epoch, k = divmod(step, steps_per_epoch)
    order = epoch_permutation(n_examples, epoch, training.data_order, training.seed)
    if training.data_order == "seeded":
        return order[k * training.batch_size:(k + 1) * training.batch_size]
    processes = training.batch_size // training.micro_batch_size
    return released_rounds(order, processes, training.micro_batch_size)[k]
