"""Which examples each training step uses: class-balanced batches mixing field and replayed clips.

Every batch holds a fixed share of new (field) examples and of replayed ones, and within each pool
the classes take turns in a shuffled order, so a word with many consented clips does not drown one
with few, and the replayed words keep their weight however lopsided the field data is. An epoch is
one pass over the field examples. The plan is a pure function of the seed and the step: a resumed
run, or the processes of a distributed one (each takes its own slice of the global batch), see
exactly the examples an uninterrupted single process would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FIELD, REPLAY = 0, 1


@dataclass(frozen=True)
class Pick:
    pool: int  # FIELD or REPLAY
    index: int  # into that pool's examples
    seed: int  # of this example's augmentation at this step


class BatchPlan:
    """The global batch of every step; ``batch`` examples, ``replay_fraction`` of them replayed."""

    def __init__(
        self,
        field_labels: list[int],
        replay_labels: list[int],
        batch: int,
        replay_fraction: float,
        seed: int,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        replayed = round(batch * replay_fraction) if replay_labels else 0
        if not field_labels:
            replayed = batch
        if not replay_labels and replayed:
            raise ValueError("no examples to train on: the dataset's train split and the replay are empty")
        self.per_pool = (batch - replayed, replayed)
        self.labels = (list(field_labels), list(replay_labels))
        self.seed = seed
        pool = FIELD if self.per_pool[FIELD] else REPLAY
        self.steps_per_epoch = max(1, math.ceil(len(self.labels[pool]) / self.per_pool[pool]))
        self._sequence = lru_cache(maxsize=4)(self._pool_sequence)

    def _pool_sequence(self, pool: int, epoch: int) -> tuple[int, ...]:
        """The pool's examples for one epoch: classes in turn, each class's examples shuffled."""
        needed = self.steps_per_epoch * self.per_pool[pool]
        if not needed:
            return ()
        rng = np.random.default_rng([self.seed, pool, epoch])
        labels = np.asarray(self.labels[pool])
        classes = np.unique(labels)
        members = {int(c): rng.permutation(np.flatnonzero(labels == c)) for c in classes}
        used = dict.fromkeys(members, 0)
        sequence: list[int] = []
        while len(sequence) < needed:
            for c in rng.permutation(classes):
                indices = members[int(c)]
                sequence.append(int(indices[used[int(c)] % len(indices)]))
                used[int(c)] += 1
        return tuple(sequence[:needed])

    def batch(self, step: int) -> list[Pick]:
        """The picks of global step ``step`` (field ones first)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        picks = []
        for pool in (FIELD, REPLAY):
            count = self.per_pool[pool]
            chosen = self._sequence(pool, epoch)[position * count : (position + 1) * count]
            picks += [
                Pick(pool, index, int(np.random.default_rng([self.seed, step, pool, slot]).integers(2**31)))
                for slot, index in enumerate(chosen)
            ]
        return picks
