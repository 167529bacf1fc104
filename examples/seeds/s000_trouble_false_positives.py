"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Troubleshooting / Common Issues / 3. False Positive Bottlenecks".

Reproduces the example exactly as the document writes it: when bottlenecks
are misidentified, raise the thresholds (cpu_threshold=90.0,
memory_threshold=90.0, gpu_threshold=95.0).

Fills in a use of that config: a CPUMemoryProfiler with the default config
and one with the raised thresholds watch the same busy loop. Shows: the
bottlenecks each reports (the raised thresholds report no more than the
defaults).
"""

import torch

from stall import CPUMemoryProfiler, ProfilingConfig

# --- the document's example ---------------------------------------------
# Symptoms: Incorrect bottleneck identification
# Solution: Adjust thresholds based on your system
config = ProfilingConfig(
    cpu_threshold=90.0,  # Higher threshold
    memory_threshold=90.0,
    gpu_threshold=95.0
)
# --------------------------------------------------------------------------

assert (config.cpu_threshold, config.memory_threshold, config.gpu_threshold) == (90.0, 90.0, 95.0)

torch.manual_seed(0)


def busy():
    a = torch.randn(256, 256)
    w = torch.randn(256, 256) / 16.0
    for _ in range(60):
        a = torch.tanh(a @ w)


found = {}
for name, cfg in (("default", ProfilingConfig()), ("raised thresholds", config)):
    profiler = CPUMemoryProfiler(cfg)
    profiler.start_profiling()
    busy()
    profiler.stop_profiling()
    found[name] = profiler.get_bottlenecks()
    print(f"{name}: {len(found[name])} bottlenecks {found[name]}")
