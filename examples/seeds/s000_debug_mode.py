"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Debugging Tools / 1. Profiling Debug Mode".

Reproduces the example exactly as the document writes it: enable debug
logging with logging.basicConfig(level=logging.DEBUG) and use a
COMPREHENSIVE ProfilingConfig.

Fills in a use of that config: an AdvancedProfiler with it profiles a short
MLP training loop, so stall's debug messages (if any) appear on stderr.
Shows: the summary.
"""

# --- the document's example ---------------------------------------------
# Enable debug logging
import logging
logging.basicConfig(level=logging.DEBUG)

from stall import ProfilingConfig, ProfilingLevel

config = ProfilingConfig(
    enabled=True,
    level=ProfilingLevel.COMPREHENSIVE
)
# --------------------------------------------------------------------------

import torch
from torch import nn

from stall import AdvancedProfiler

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)

profiler = AdvancedProfiler(config)
profiler.start_profiling()
for _ in range(100):
    sgd.zero_grad()
    criterion(model(torch.randn(64, 64)), torch.randint(0, 10, (64,))).backward()
    sgd.step()
results = profiler.stop_profiling()
print("level:", config.level)
print("summary:", profiler.get_profiling_summary())
