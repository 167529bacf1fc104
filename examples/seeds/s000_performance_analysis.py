"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Debugging Tools / 2. Performance Analysis".

Reproduces the example exactly as the document writes it: stop the
profiler and print the CPU, GPU and data metrics (`to_dict()` of
results['cpu'], results['gpu'], results['data']), the bottlenecks and the
suggestions.

Fills in `profiler`: an AdvancedProfiler started around a real epoch of MLP
training whose DataLoader (random tensors, batch 32) is made slow on
purpose with a collate function that sleeps 5 ms a batch, so the data
metrics have something to show.
"""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.dataloader import default_collate

from stall import AdvancedProfiler, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)


def slow_collate(batch):
    time.sleep(0.005)
    return default_collate(batch)


loader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                    batch_size=32, shuffle=True, collate_fn=slow_collate)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

profiler = AdvancedProfiler(ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED))
profiler.start_profiling()
for x, y in loader:
    sgd.zero_grad()
    criterion(model(x), y).backward()
    sgd.step()

# --- the document's example ---------------------------------------------
# Analyze profiling results in detail
results = profiler.stop_profiling()

print("CPU Metrics:", results['cpu'].to_dict())
print("GPU Metrics:", results['gpu'].to_dict())
print("Data Metrics:", results['data'].to_dict())
print("Bottlenecks:", results['bottlenecks'])
print("Suggestions:", results['suggestions'])
# --------------------------------------------------------------------------
