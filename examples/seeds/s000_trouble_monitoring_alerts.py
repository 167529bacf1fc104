"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Common Issues / 4. Performance Monitoring Alerts".

Reproduces the example exactly as the document writes it: when there are
too many alerts, monitor less often (monitoring_interval=2.0) and raise the
alert threshold (alert_threshold=0.9).

Fills in a use of that config: a PerformanceMonitor with it, a callback that
counts alerts, a few seconds of MLP training. Shows: the alert count and the
monitoring summary.

Monitoring and alerts are issue 9: until it lands this script stops at a
NotImplementedError naming issue 9.
"""

import torch
from torch import nn

from stall import PerformanceMonitor, ProfilingConfig

# --- the document's example ---------------------------------------------
# Symptoms: Too many performance alerts
# Solution: Adjust alert thresholds and monitoring interval
config = ProfilingConfig(
    monitoring_interval=2.0,  # Less frequent monitoring
    alert_threshold=0.9  # Higher alert threshold
)
# --------------------------------------------------------------------------

assert config.monitoring_interval == 2.0 and config.alert_threshold == 0.9

torch.manual_seed(0)
alerts = []
monitor = PerformanceMonitor(config)
monitor.add_alert_callback(alerts.append)
monitor.start_monitoring()
model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(40):
    sgd.zero_grad()
    criterion(model(torch.randn(256, 256)), torch.randint(0, 10, (256,))).backward()
    sgd.step()
monitor.stop_monitoring()

print("alerts:", len(alerts))
print("monitoring summary:", monitor.get_monitoring_summary())
