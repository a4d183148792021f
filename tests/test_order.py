"""`data_order: released` against an independent computation: torch's own RandomSampler with a fresh generator,
BatchSampler, and accelerate's BatchSamplerShard for every process, as transformers' Trainer prepared them for the
released 8-GPU runs."""
from __future__ import annotations

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, RandomSampler

from repro.config import Training
from repro.cut.order import global_batch
from repro.cut.train import plan_steps


def accelerate_steps(n: int, processes: int, micro: int, epochs: int) -> list[list[int]]:
    """Global batches (process 0's micro-batch first) of `epochs` epochs of a sharded RandomSampler."""
    sampler = RandomSampler(range(n), generator=torch.Generator())
    steps = []
    for _ in range(epochs):
        state = sampler.generator.get_state()  # accelerate synchronises every process's generator each epoch
        per_process = []
        for rank in range(processes):
            sampler.generator.set_state(state)
            shard = BatchSamplerShard(BatchSampler(sampler, micro, drop_last=False), num_processes=processes,
                                      process_index=rank, split_batches=False, even_batches=True)
            per_process.append(list(shard))
        steps += [[i for rank in range(processes) for i in per_process[rank][k]] for k in range(len(per_process[0]))]
    return steps


@pytest.mark.parametrize("n,batch,micro", [(358, 8, 1), (288, 8, 1), (1317, 8, 1), (13, 4, 2), (11, 6, 2),
                                           (5, 8, 2), (7, 8, 1), (9, 8, 4), (17, 9, 3)])
def test_released_order_is_what_the_released_trainer_drew(n, batch, micro):
    training = Training(batch_size=batch, micro_batch_size=micro, epochs=2, data_order="released")
    steps_per_epoch, total = plan_steps(n, training)
    ours = [global_batch(step, n, training, steps_per_epoch) for step in range(total)]
    assert ours == accelerate_steps(n, batch // micro, micro, epochs=2)
    assert all(len(b) == batch for b in ours)  # even batches: the last step of an epoch is filled up


def test_released_iteration1_order_fills_the_last_step_from_the_epoch_start():
    training = Training()  # the paper's 8 x 1 x 1 and the released order are the defaults
    steps_per_epoch, total = plan_steps(358, training)
    steps = [global_batch(s, 358, training, steps_per_epoch) for s in range(total)]
    assert total == 45
    assert sorted([i for s in steps[:44] for i in s] + steps[44][:6]) == list(range(358))  # each example once
    assert steps[44][6:] == steps[0][:2]  # the 2 missing slots repeat the epoch's first examples
    # the script's seed plays no part (a fresh generator), unlike the seeded order
    assert global_batch(0, 358, Training(seed=7), steps_per_epoch) == steps[0]
    assert global_batch(0, 358, Training(data_order="seeded", seed=7), steps_per_epoch) != global_batch(
        0, 358, Training(data_order="seeded"), steps_per_epoch)
