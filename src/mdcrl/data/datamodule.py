"""A LightningDataModule over in-memory multi-domain splits.

Batches are gathered with one tensor index per batch (a sampler that yields slices of one
permutation per epoch) instead of the default per-sample collate or a BatchSampler's lists of
Python ints: for small tabular samples that per-sample Python work would dominate the step time.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mdcrl.data.base import MultiDomainData, Split
from mdcrl.settings import split_step_rows


def to_model_input(x: torch.Tensor) -> torch.Tensor:
    """Images are stored as uint8 (4x less memory than float); the models see [-1, 1] floats."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


class IndexedTensors(Dataset):
    """A dataset whose items are whole batches (or chunks of batches): __getitem__ takes a tensor
    of row indices. Images stay uint8 here; the model converts each minibatch (to_model_input)."""

    def __init__(self, split: Split):
        self.tensors = (torch.from_numpy(split.x), torch.from_numpy(split.z), torch.from_numpy(split.domain))

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)


def interleaved_order(domains: np.ndarray) -> torch.Tensor:
    """The rows of a held-out split in an order that spreads every domain evenly over it: row r of
    domain d (of n_d) goes to position (r + 0.5) / n_d, ties by domain. Splits are stored domain by
    domain, so consecutive batches of them held only some domains: at 4 domains and batch 1024 the
    first validation batch held domains 0-2 and the second 2-3, so the penalties of the selection
    score never compared domain 0 with domain 3, and at 2 domains one batch compared 1000 rows of
    one domain with 24 of the other. In this order every batch holds every domain in proportion."""
    domains = np.asarray(domains)
    if len(domains) == 0:
        return torch.zeros(0, dtype=torch.long)
    _, codes, counts = np.unique(domains, return_inverse=True, return_counts=True)
    rank = np.zeros(len(codes), dtype=np.int64)
    for code in range(len(counts)):  # one pass per domain: the rank of each row within its domain
        rows = np.flatnonzero(codes == code)
        rank[rows] = np.arange(len(rows))
    position = (rank + 0.5) / counts[codes]
    return torch.from_numpy(np.lexsort((codes, position)))


class TensorBatches(Sampler):
    """Index tensors of consecutive batches: of a fresh permutation each epoch when shuffling (with
    ``seed``), else of ``order`` (default 0..n-1). The last batch may be smaller. ``batch_size`` here may be a
    multiple of the training batch size: a chunk of several batches.

    Epoch e's permutation is the (e+1)-th draw of a generator seeded with ``seed``, whether or not
    the run was interrupted: Lightning calls set_epoch(e) before each epoch, and a resumed run
    (which starts at e > 0 with a fresh sampler) replays the e earlier draws first (a fraction of a
    millisecond each), so that kill + resume trains on the same batches as an uninterrupted run."""

    def __init__(self, n: int, batch_size: int, seed: int | None = None, order: torch.Tensor | None = None):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.order = torch.arange(n) if order is None else order
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.epoch: int | None = None  # None until set_epoch: then each iteration is the next epoch
        self._draws = 0  # permutations drawn from the generator so far

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.generator is None:
            return iter(self.order.split(self.batch_size))
        epoch = self._draws if self.epoch is None else self.epoch
        if self._draws != epoch:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):
                torch.randperm(self.n, generator=self.generator)
        self._draws = epoch + 1
        return iter(torch.randperm(self.n, generator=self.generator).split(self.batch_size))


def batch_loader(split: Split, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of ``split``: shuffled with ``seed`` (training), else the held-out order, with every
    domain spread evenly over the batches (interleaved_order)."""
    dataset = IndexedTensors(split)
    order = None if shuffle else interleaved_order(split.domain)
    sampler = TensorBatches(len(dataset), batch_size, seed if shuffle else None, order)
    return DataLoader(dataset, batch_size=None, sampler=sampler)


class MultiDomainDataModule(L.LightningDataModule):
    """Training items are chunks of consecutive minibatches that the module splits again
    (models/module.py): the whole epoch for flat data, one minibatch for images (an epoch of
    images as floats would not fit in memory)."""

    def __init__(self, data: MultiDomainData, batch_size: int, seed: int = 0, step_batch_size: int | None = None):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        # Rows per optimiser step (model.optimizer.step_batch_size): training items are split into
        # minibatches of this size, from the same shuffled order, so batch_size=1024 with steps of
        # 256 takes exactly the steps of batch_size=256. Held-out batches keep batch_size.
        self.step_batch_size = split_step_rows(step_batch_size, batch_size) or batch_size

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.data.splits["train"]) // self.step_batch_size)

    def batches_per_item(self) -> int:
        """Minibatches per training item: for flat data the whole epoch, or, with a fractional
        trainer.val_check_interval, that fraction of it, so that Lightning validates (and checkpoints
        the best) as often within an epoch as asked; the batches themselves are the same."""
        if self.data.splits["train"].x.ndim != 2:
            return 1
        interval = getattr(self.trainer, "val_check_interval", 1.0) if self.trainer is not None else 1.0
        if isinstance(interval, float) and 0 < interval < 1:
            return max(1, round(self.steps_per_epoch * interval))
        return self.steps_per_epoch

    def train_dataloader(self):
        train = self.data.splits["train"]
        chunk = self.step_batch_size * self.batches_per_item()
        loader = batch_loader(train, chunk, shuffle=True, seed=self.seed)
        if self.trainer is not None:
            # A resumed run's first iterator is made before Lightning's set_epoch: start it at the
            # restored epoch here, or it would replay epoch 0's batches.
            loader.sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return loader

    def val_dataloader(self):
        return batch_loader(self.data.splits["valid"], self.batch_size, shuffle=False)

    def test_dataloader(self):
        return batch_loader(self.data.splits["test"], self.batch_size, shuffle=False)
