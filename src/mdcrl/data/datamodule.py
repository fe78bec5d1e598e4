"""A LightningDataModule over in-memory multi-domain splits.

Batches are gathered with one tensor index per batch (a BatchSampler feeding index lists to the
dataset) instead of the default per-sample collate: for small tabular samples that per-sample
Python work would dominate the step time.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from mdcrl.data.mixing import MultiDomainData, Split


def to_model_input(x: torch.Tensor) -> torch.Tensor:
    """Images are stored as uint8 (4x less memory than float); the models see [-1, 1] floats."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


class IndexedTensors(Dataset):
    """A dataset whose items are whole batches: __getitem__ takes a list of row indices."""

    def __init__(self, split: Split):
        self.tensors = (torch.from_numpy(split.x), torch.from_numpy(split.z), torch.from_numpy(split.domain))

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        index = torch.as_tensor(index)
        x, z, domain = (t[index] for t in self.tensors)
        return to_model_input(x), z, domain


def batch_loader(split: Split, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    dataset = IndexedTensors(split)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(sampler, batch_size, drop_last=False))


class MultiDomainDataModule(L.LightningDataModule):
    def __init__(self, data: MultiDomainData, batch_size: int, seed: int = 0):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self):
        return batch_loader(self.data.splits["train"], self.batch_size, shuffle=True, seed=self.seed)

    def val_dataloader(self):
        return batch_loader(self.data.splits["valid"], self.batch_size, shuffle=False)

    def test_dataloader(self):
        return batch_loader(self.data.splits["test"], self.batch_size, shuffle=False)
