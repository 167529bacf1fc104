"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 1. ProfilingConfig".

Reproduces the ProfilingConfig example exactly as the document writes it:
the configuration class for all profiling settings (level, sampling rate,
auto-optimization, monitoring interval, alert threshold). The document's
module `advanced_code_profiling_optimization` is the package `stall`.

Shows: the config is built with those keyword arguments, keeps them, and
drives a short real profiling run (an AdvancedProfiler around a small matrix
workload), whose summary is printed.
"""

import torch

from stall import AdvancedProfiler, ProfilingConfig, ProfilingLevel

# --- the document's example ---------------------------------------------
config = ProfilingConfig(
    enabled=True,
    level=ProfilingLevel.DETAILED,
    sampling_rate=0.1,
    auto_optimize=True,
    enable_monitoring=True,
    monitoring_interval=1.0,
    alert_threshold=0.8
)
# --------------------------------------------------------------------------

assert config.enabled is True
assert config.level == ProfilingLevel.DETAILED
assert config.sampling_rate == 0.1
assert config.auto_optimize is True
assert config.enable_monitoring is True
assert config.monitoring_interval == 1.0
assert config.alert_threshold == 0.8

# Use the configuration for a short real run.
torch.manual_seed(0)
profiler = AdvancedProfiler(config)
profiler.start_profiling()
a = torch.randn(256, 256)
w = torch.randn(256, 256) / 16.0
for _ in range(60):
    a = torch.tanh(a @ w)
profiler.stop_profiling()

print("config:", config)
print("summary:", profiler.get_profiling_summary())
