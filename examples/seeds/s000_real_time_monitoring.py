"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Usage Examples / Real-Time Monitoring".

Reproduces the Real-Time Monitoring example exactly as the document writes
it: a PerformanceMonitor with monitoring_interval=0.5 and alert_threshold=0.8,
an async alert callback, monitoring started, a training loop that prints the
average CPU and memory of the monitoring summary after each epoch, then
monitoring stopped. `from advanced_code_profiling_optimization import ...`
becomes `from stall import ...` (ProfilingConfig, used but not imported by
the document, is imported too).

Fills in what the document leaves undefined: `logger` is a standard
logging.getLogger; `num_epochs` = 3; `model` a 2-layer MLP; `dataloader` a
DataLoader over a TensorDataset of random tensors; `optimizer` torch SGD;
`train_epoch(model, dataloader, optimizer)` one epoch with CrossEntropyLoss.

Monitoring and alerts are issue 9: until it lands this script stops at a
NotImplementedError naming issue 9.
"""

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stall import PerformanceMonitor
from stall import ProfilingConfig

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("s000_real_time_monitoring")
torch.manual_seed(0)

num_epochs = 3
model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
dataloader = DataLoader(TensorDataset(torch.randn(4096, 128), torch.randint(0, 10, (4096,))),
                        batch_size=64, shuffle=True)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
criterion = nn.CrossEntropyLoss()


def train_epoch(model, dataloader, optimizer):
    model.train()
    total = 0.0
    for x, y in dataloader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(dataloader)


# --- the document's example ---------------------------------------------
# Configure monitoring
config = ProfilingConfig(
    enabled=True,
    monitoring_interval=0.5,
    alert_threshold=0.8
)

monitor = PerformanceMonitor(config)

# Add alert callback
async def alert_handler(alert):
    logger.warning(f"Performance alert: {alert['message']}")
    # Send notification, scale resources, etc.

monitor.add_alert_callback(alert_handler)

# Start monitoring
monitor.start_monitoring()

# Run your workload
for epoch in range(num_epochs):
    train_epoch(model, dataloader, optimizer)
    
    # Get monitoring summary
    summary = monitor.get_monitoring_summary()
    print(f"Avg CPU: {summary['avg_cpu_usage']:.1f}%")
    print(f"Avg Memory: {summary['avg_memory_usage']:.2f}GB")

# Stop monitoring
monitor.stop_monitoring()
# --------------------------------------------------------------------------

print("final monitoring summary:", monitor.get_monitoring_summary())
