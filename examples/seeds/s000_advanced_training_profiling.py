"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Usage Examples / Advanced Training Profiling".

Reproduces the Advanced Training Profiling example exactly as the document
writes it: a COMPREHENSIVE ProfilingConfig, an AdvancedProfiler around the
whole training loop, a per-epoch AdvancedProfiler that is stopped and
restarted every 100 steps (logging `step_results['bottlenecks']` when there
are any), the epoch's `epoch_results['combined'].execution_time` logged, and
the final results. The document's module is `stall`.

Fills in what the document leaves undefined: `num_epochs` = 2; `dataloader`
a DataLoader of 6400 random samples in batches of 32 (200 steps an epoch, so
the every-100-steps branch runs twice an epoch); `model` a 2-layer MLP;
`logger` a standard logging.getLogger; `training_step(model, batch,
optimizer)` one CrossEntropyLoss step. Note: the document binds `optimizer`
to the CodeOptimizer and passes that to training_step; a training step needs a
torch optimizer, so the step here steps `sgd`, the torch.optim.SGD built for
`model`. Shows: the epoch timings and the keys of the final results.
"""

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import AdvancedProfiler, CodeOptimizer, ProfilingConfig, ProfilingLevel

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("s000_advanced_training_profiling")
torch.manual_seed(0)

num_epochs = 2
dataloader = DataLoader(TensorDataset(torch.randn(6400, 64), torch.randint(0, 10, (6400,))),
                        batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)


def training_step(model, batch, optimizer):
    # `optimizer` is the document's CodeOptimizer; the torch step uses `sgd`.
    x, y = batch
    sgd.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    sgd.step()
    return loss.item()


# --- the document's example ---------------------------------------------
# Comprehensive training profiling
config = ProfilingConfig(
    enabled=True,
    level=ProfilingLevel.COMPREHENSIVE,
    auto_optimize=True,
    enable_monitoring=True
)

profiler = AdvancedProfiler(config)
optimizer = CodeOptimizer(profiler)

# Profile entire training loop
profiler.start_profiling()

for epoch in range(num_epochs):
    epoch_profiler = AdvancedProfiler(config)
    epoch_profiler.start_profiling()
    
    for batch_idx, batch in enumerate(dataloader):
        # Training step
        loss = training_step(model, batch, optimizer)
        
        # Profile every 100 steps
        if batch_idx % 100 == 0:
            step_results = epoch_profiler.stop_profiling()
            if step_results['bottlenecks']:
                logger.info(f"Bottlenecks detected: {step_results['bottlenecks']}")
            epoch_profiler.start_profiling()
    
    epoch_results = epoch_profiler.stop_profiling()
    logger.info(f"Epoch {epoch} profiling: {epoch_results['combined'].execution_time:.2f}s")

final_results = profiler.stop_profiling()
# --------------------------------------------------------------------------

print(f"last loss: {loss:.4f}")
print("final results keys:", sorted(final_results))
print(f"whole run: {final_results['combined'].execution_time:.2f}s, "
      f"{len(final_results['bottlenecks'])} bottlenecks")
