"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Monitoring and Logging / Structured Logging".

Reproduces the Structured Logging example: one log event "Profiling results"
carrying execution_time, cpu_usage, memory_usage, bottleneck_type (its
`.value`, or None) and bottleneck_severity of a PerformanceMetrics.

The document uses structlog, which is not installed here: this script uses
the standard `logging` module instead, with `logging.getLogger(__name__)` for
`structlog.get_logger(__name__)`, the same fields passed through `extra=`, and
a small formatter that writes each record as one JSON line (the JSON logging
for SIEM integration the document describes).

Fills in `metrics`: the PerformanceMetrics returned by a CPUMemoryProfiler
around a few seconds of real MLP training on random data. Shows: the JSON
log line.
"""

import json
import logging
import sys

import torch
from torch import nn

from stall import CPUMemoryProfiler, ProfilingConfig

FIELDS = ("execution_time", "cpu_usage", "memory_usage", "bottleneck_type", "bottleneck_severity")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        event = {"event": record.getMessage(), "level": record.levelname.lower(), "logger": record.name}
        event.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        return json.dumps(event)


handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(JsonFormatter())
logging.basicConfig(level=logging.INFO, handlers=[handler])

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.01)

profiler = CPUMemoryProfiler(ProfilingConfig(enabled=True))
profiler.start_profiling()
for _ in range(40):
    sgd.zero_grad()
    criterion(model(torch.randn(256, 128)), torch.randint(0, 10, (256,))).backward()
    sgd.step()
metrics = profiler.stop_profiling()

# --- the document's example (structlog -> logging) -----------------------
logger = logging.getLogger(__name__)
logger.info(
    "Profiling results",
    extra=dict(
        execution_time=metrics.execution_time,
        cpu_usage=metrics.cpu_usage,
        memory_usage=metrics.memory_usage,
        bottleneck_type=metrics.bottleneck_type.value if metrics.bottleneck_type else None,
        bottleneck_severity=metrics.bottleneck_severity
    )
)
# --------------------------------------------------------------------------
