"""Shared pieces of the scenario scripts: a tiny model, a step of known CPU
cost, and datasets whose per-sample cost is on-CPU work or waiting.

Each scenario is an ordinary PyTorch training script that knows nothing of
stall; it injects one cause of slowness. tests/scenarios/run.py runs each
under `stall run` and compares the first finding with the `expect:` line of
the scenario's docstring.
"""
import json
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

_loaders_made = 0


def make_loader(*args, **kwargs):
    """DataLoader(*args, **kwargs), with the settings run.py's what-if check
    gives for the n-th loader this process makes (SCENARIO_LOADER_OVERRIDES,
    a JSON object {"n": {setting: value}}, n from 1)."""
    global _loaders_made
    _loaders_made += 1
    over = json.loads(os.environ.get("SCENARIO_LOADER_OVERRIDES") or "{}")
    kwargs.update(over.get(str(_loaders_made), {}))
    return DataLoader(*args, **kwargs)


def busy(ms):
    """Burn `ms` milliseconds of CPU in this thread."""
    end = time.perf_counter() + ms / 1000.0
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


class Samples(Dataset):
    """n samples of 16 floats; each costs cpu_ms of CPU and wait_ms of waiting."""

    def __init__(self, n, cpu_ms=0.0, wait_ms=0.0):
        self.n, self.cpu_ms, self.wait_ms = n, cpu_ms, wait_ms

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.wait_ms:
            time.sleep(self.wait_ms / 1000.0)
        if self.cpu_ms:
            busy(self.cpu_ms)
        return torch.full((16,), float(i % 97)), i % 4


class Stream(IterableDataset):
    """The same as an iterable dataset, split across workers."""

    def __init__(self, n, cpu_ms=0.0, wait_ms=0.0):
        self.n, self.cpu_ms, self.wait_ms = n, cpu_ms, wait_ms

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, m = (info.id, info.num_workers) if info else (0, 1)
        for i in range(k, self.n, m):
            if self.wait_ms:
                time.sleep(self.wait_ms / 1000.0)
            if self.cpu_ms:
                busy(self.cpu_ms)
            yield torch.full((16,), float(i % 97)), i % 4


def train(loaders, step_ms, epochs=1, after_step=None):
    """Trains a linear model over zip(*loaders); each step also burns step_ms
    of CPU, then calls after_step() if given."""
    torch.set_num_threads(1)
    model = nn.Linear(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    n = 0
    for _ in range(epochs):
        for batches in zip(*loaders):
            x, y = batches[0]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            busy(step_ms)
            if after_step:
                after_step()
            n += 1
    print("scenario trained %d steps" % n)
