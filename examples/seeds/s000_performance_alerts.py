"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Monitoring and Logging / Performance Alerts".

Reproduces the Performance Alerts example exactly as the document writes it:
an async `performance_alert_handler(alert)` that escalates on
`alert['severity']`: above 0.9 it awaits send_critical_alert and
scale_resources, above 0.7 send_warning_alert, else it logs
`alert['message']`.

Fills in what the document leaves undefined: `send_critical_alert`,
`scale_resources` and `send_warning_alert` are async functions that record
what they were asked to do (a stand-in for a pager, an autoscaler, a chat
hook); `logger` is a standard logging.getLogger. The handler is registered
with a PerformanceMonitor (the document's alert callback mechanism) with a low
alert_threshold and a short interval, around a few seconds of real CPU work,
so alerts are produced by stall and not made up here. Shows: how many alerts
went to each path, and the monitoring summary.

Monitoring and alerts are issue 9: until it lands this script stops at a
NotImplementedError naming issue 9.
"""

import logging

import torch
from torch import nn

from stall import PerformanceMonitor, ProfilingConfig

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("s000_performance_alerts")
torch.manual_seed(0)

actions = {"critical": [], "scale": 0, "warning": [], "info": 0}


async def send_critical_alert(alert):
    actions["critical"].append(alert)
    logger.error("CRITICAL: %s", alert["message"])


async def scale_resources():
    actions["scale"] += 1
    logger.error("scaling resources (request #%d)", actions["scale"])


async def send_warning_alert(alert):
    actions["warning"].append(alert)
    logger.warning("WARNING: %s", alert["message"])


# --- the document's example ---------------------------------------------
async def performance_alert_handler(alert):
    """Handle performance alerts."""
    if alert['severity'] > 0.9:
        # Critical alert - immediate action required
        await send_critical_alert(alert)
        await scale_resources()
    elif alert['severity'] > 0.7:
        # Warning alert - monitor closely
        await send_warning_alert(alert)
    else:
        # Info alert - log for analysis
        logger.info(f"Performance alert: {alert['message']}")
# --------------------------------------------------------------------------


def count_info(alert):
    if alert["severity"] <= 0.7:
        actions["info"] += 1


config = ProfilingConfig(enabled=True, enable_monitoring=True, monitoring_interval=0.2, alert_threshold=0.1)
monitor = PerformanceMonitor(config)
monitor.add_alert_callback(performance_alert_handler)
monitor.add_alert_callback(count_info)
monitor.start_monitoring()

model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(30):
    sgd.zero_grad()
    criterion(model(torch.randn(256, 256)), torch.randint(0, 10, (256,))).backward()
    sgd.step()

monitor.stop_monitoring()
print(f"critical: {len(actions['critical'])} (scale requests {actions['scale']}), "
      f"warning: {len(actions['warning'])}, info: {actions['info']}")
print("monitoring summary:", monitor.get_monitoring_summary())
