"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Usage Examples / Decorator-Based Profiling".

Reproduces the Decorator-Based Profiling example exactly as the document
writes it: `@profile_function()` on a training step, and a
`profile_context("training_epoch")` block whose profiler's
`current_metrics.cpu_usage` is read during execution.
`from advanced_code_profiling_optimization import ...` becomes
`from stall import ...`.

Fills in what the document leaves undefined: `model` is a 2-layer MLP;
`dataloader` a DataLoader straight over a tensor of random inputs (so each
`batch` is the input tensor the step feeds to `model(batch)`, as the document
does), with drop_last so every batch has 32 rows; `targets` the 32 synthetic
labels the step trains towards; `criterion` CrossEntropyLoss; `optimizer`
torch SGD; `logger` a standard logging.getLogger. Shows: the last loss and
the context's metrics at the end.
"""

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader

from stall import profile_function, profile_context

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("s000_decorator_profiling")
torch.manual_seed(0)

model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
dataloader = DataLoader(torch.randn(1024, 64), batch_size=32, shuffle=True, drop_last=True)
targets = torch.randint(0, 10, (32,))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.002)

# --- the document's example ---------------------------------------------
# Profile individual functions
@profile_function()
def training_step(model, batch, optimizer):
    outputs = model(batch)
    loss = criterion(outputs, targets)
    loss.backward()
    optimizer.step()
    return loss.item()

# Profile code blocks
with profile_context("training_epoch") as profiler:
    for batch in dataloader:
        loss = training_step(model, batch, optimizer)
        # Access profiler during execution
        if profiler.current_metrics.cpu_usage > 90:
            logger.warning("High CPU usage detected")
# --------------------------------------------------------------------------

# The document's step never zeroes the gradients, so they accumulate over the
# epoch; the small learning rate keeps that stable.
print(f"steps: {len(dataloader)}, last loss {loss:.4f}")
print("training_epoch metrics:", profiler.current_metrics.to_dict())
