"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Advanced Features / Custom Bottleneck Detection".

Reproduces the example exactly as the document writes it: a rule
`custom_bottleneck_detector(metrics)` that returns
`CustomBottleneckType.CUSTOM_ISSUE` when `metrics['custom_metric']` is above
`threshold` (else None), registered with
`profiler.add_custom_bottleneck_detector(...)`.

Fills in what the document leaves undefined: `CustomBottleneckType` is the
user's own Enum; `threshold` = 0.5; `profiler` a BottleneckProfiler whose
session profiles MLP training with a deliberately slow Python-loop
preprocessing step. `custom_metric` is meant to be the user's own metric
(here: the share of wall time spent in preprocessing, well above the
threshold in this workload). Shows: the detector's finding in the bottleneck
summary.

The user's metric is recorded with `profiler.record_metric("custom_metric",
value)` (stall's addition: the document does not say how it gets there).
"""

import enum
import time

import torch
from torch import nn

from stall import BottleneckProfiler, BottleneckProfilerConfig, BottleneckType


class CustomBottleneckType(enum.Enum):
    CUSTOM_ISSUE = "custom_issue"


threshold = 0.5
profiler = BottleneckProfiler(BottleneckProfilerConfig())

# --- the document's example ---------------------------------------------
# Define custom bottleneck detection rules
def custom_bottleneck_detector(metrics):
    if metrics['custom_metric'] > threshold:
        return CustomBottleneckType.CUSTOM_ISSUE
    return None

profiler.add_custom_bottleneck_detector(custom_bottleneck_detector)
# --------------------------------------------------------------------------

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
criterion = nn.CrossEntropyLoss()
sgd = torch.optim.SGD(model.parameters(), lr=0.05)


def slow_preprocess(x):
    return torch.stack([(row - row.mean()) / (row.std() + 1e-6) for row in x])


session_id = profiler.start_profiling_session("custom_detection")
t_start, t_pre = time.perf_counter(), 0.0
for _ in range(40):
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
    t0 = time.perf_counter()
    with profiler.profile_operation("preprocessing", BottleneckType.PREPROCESSING):
        x = slow_preprocess(x)
    t_pre += time.perf_counter() - t0
    with profiler.profile_operation("train_step", BottleneckType.CPU_COMPUTATION):
        sgd.zero_grad()
        criterion(model(x), y).backward()
        sgd.step()
# the user's own metric, recorded with stall: the share of wall time in preprocessing
profiler.record_metric("custom_metric", t_pre / (time.perf_counter() - t_start))
profiler.stop_profiling_session()

summary = profiler.get_bottleneck_summary()
custom = [b for b in summary.get("bottlenecks", []) if b.get("type") == CustomBottleneckType.CUSTOM_ISSUE.value]
print("bottlenecks:", [b.get("type") for b in summary.get("bottlenecks", [])])
assert custom, "the custom detector's finding is missing from the summary"
print("custom finding:", custom[0])
