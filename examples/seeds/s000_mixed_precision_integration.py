"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Integration with Mixed Precision Training / Combined Profiling and
Optimization".

Reproduces the combined example exactly as the document writes it, except
for two things outside stall:
- `advanced_mixed_precision_training` (AdvancedMixedPrecisionManager,
  MixedPrecisionConfig) is another system, not part of stall and not
  installed. This script defines a small, real stand-in with the interface
  the example uses: `MixedPrecisionConfig(enabled=True)` and
  `AdvancedMixedPrecisionManager(config).train_epoch(dataloader, model,
  optimizer)`, which trains one epoch under torch.autocast (bfloat16 on the
  CPU, float16 on a GPU) and returns {'losses': [...], 'precision_modes':
  [...]}.
- The document's `logger.info("Epoch complete", epoch=..., ...)` is
  structlog-style; structlog is not installed, so the standard `logging`
  module is used, the same fields passed through `extra=` and printed by a
  formatter as one JSON line.
`from advanced_code_profiling_optimization import AdvancedProfiler` becomes
`from stall import AdvancedProfiler` (ProfilingConfig imported too).

Fills in: `num_epochs` = 2, `model` a 2-layer MLP, `dataloader` random
tensors, `optimizer` torch SGD. Shows: per epoch, the loss, the precision
mode, and stall's execution time, CPU usage and bottleneck count.
"""

import json
import logging
import sys
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import AdvancedProfiler
from stall import ProfilingConfig

FIELDS = ("epoch", "loss", "precision_mode", "execution_time", "cpu_usage", "bottlenecks")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        event = {"event": record.getMessage()}
        event.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        return json.dumps(event)


handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(JsonFormatter())
logging.basicConfig(level=logging.INFO, handlers=[handler])
logger = logging.getLogger("s000_mixed_precision_integration")


# --- stand-in for advanced_mixed_precision_training (not part of stall) ---
@dataclass
class MixedPrecisionConfig:
    enabled: bool = True


class AdvancedMixedPrecisionManager:
    def __init__(self, config):
        self.config = config
        self.criterion = nn.CrossEntropyLoss()

    def train_epoch(self, dataloader, model, optimizer):
        device = next(model.parameters()).device
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        mode = str(dtype).replace("torch.", "") if self.config.enabled else "float32"
        losses, modes = [], []
        for x, y in dataloader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=dtype, enabled=self.config.enabled):
                loss = self.criterion(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            modes.append(mode)
        return {"losses": losses, "precision_modes": modes}
# ----------------------------------------------------------------------------


torch.manual_seed(0)
num_epochs = 2
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
dataloader = DataLoader(TensorDataset(torch.randn(2048, 64), torch.randint(0, 10, (2048,))),
                        batch_size=64, shuffle=True)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

# --- the document's example ---------------------------------------------
# Configure both systems
mp_config = MixedPrecisionConfig(enabled=True)
profiling_config = ProfilingConfig(enabled=True)

# Create managers
mp_manager = AdvancedMixedPrecisionManager(mp_config)
profiler = AdvancedProfiler(profiling_config)

# Combined training with profiling
for epoch in range(num_epochs):
    # Profile training epoch
    profiler.start_profiling()
    
    # Mixed precision training
    epoch_metrics = mp_manager.train_epoch(dataloader, model, optimizer)
    
    # Get profiling results
    profiling_results = profiler.stop_profiling()
    
    # Log combined results
    logger.info(
        "Epoch complete",
        extra=dict(
            epoch=epoch,
            loss=epoch_metrics['losses'][-1],
            precision_mode=epoch_metrics['precision_modes'][-1],
            execution_time=profiling_results['combined'].execution_time,
            cpu_usage=profiling_results['combined'].cpu_usage,
            bottlenecks=len(profiling_results['bottlenecks'])
        )
    )
# --------------------------------------------------------------------------
