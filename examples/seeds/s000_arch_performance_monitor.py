"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 6. PerformanceMonitor".

Reproduces the PerformanceMonitor example exactly as the document writes it:
real-time performance monitoring with an alert callback: add the callback,
start monitoring, stop monitoring, get the monitoring summary. The
document's module is `stall`.

Fills in what the document leaves undefined: `alert_handler` is a plain
function that logs each alert with the standard `logging` module and counts
it; "# ... monitoring active ..." is a few seconds of real CPU work (MLP
training on random data). The low alert_threshold makes alerts likely.
Shows: the number of alerts and the monitoring summary.

Monitoring and alerts are issue 9: until it lands this script stops at a
NotImplementedError naming issue 9.
"""

import logging

import torch
from torch import nn

from stall import PerformanceMonitor, ProfilingConfig

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("s000_arch_performance_monitor")
torch.manual_seed(0)

config = ProfilingConfig(enabled=True, enable_monitoring=True, monitoring_interval=0.2, alert_threshold=0.1)
alerts = []


def alert_handler(alert):
    alerts.append(alert)
    logger.warning("alert: %s", alert)


model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)

# --- the document's example ---------------------------------------------
monitor = PerformanceMonitor(config)
monitor.add_alert_callback(alert_handler)
monitor.start_monitoring()
# ... monitoring active ...
for _ in range(30):
    x = torch.randn(256, 256)
    y = torch.randint(0, 10, (256,))
    sgd.zero_grad()
    criterion(model(x), y).backward()
    sgd.step()
monitor.stop_monitoring()
summary = monitor.get_monitoring_summary()
# --------------------------------------------------------------------------

print("alerts received:", len(alerts))
print("monitoring summary:", summary)
