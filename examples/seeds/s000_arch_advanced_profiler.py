"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 4. AdvancedProfiler".

Reproduces the AdvancedProfiler example exactly as the document writes it:
the high-level profiler combining all profiling techniques, started, stopped
(returning results) and summarized. The document's module is `stall`.

Fills in "# ... code execution ..." with one real epoch of training a
2-layer MLP on a DataLoader of random data. Shows: the keys of the results
and the profiling summary.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import AdvancedProfiler, ProfilingConfig, ProfilingLevel

torch.manual_seed(0)
config = ProfilingConfig(enabled=True, level=ProfilingLevel.DETAILED)

dataset = TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,)))
loader = DataLoader(dataset, batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)

# --- the document's example ---------------------------------------------
profiler = AdvancedProfiler(config)
profiler.start_profiling()
# ... code execution ...
for x, y in loader:
    sgd.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    sgd.step()
results = profiler.stop_profiling()
summary = profiler.get_profiling_summary()
# --------------------------------------------------------------------------

print("final loss:", round(loss.item(), 4))
print("results keys:", sorted(results))
print("summary:", summary)
