"""Seed 000 ("Advanced Code Profiling and Optimization System"), section
"Architecture / Core Components / 2. PerformanceMetrics".

Reproduces the PerformanceMetrics example exactly as the document writes it:
the performance metrics data structure, built by hand with execution and CPU
and GPU times, usages, and a CPU-bound bottleneck of severity 0.8. The
document's module `advanced_code_profiling_optimization` is `stall`.

Shows: the fields read back as given, and to_dict() (used by the document's
"Performance Analysis" example) renders the metrics.
"""

from stall import BottleneckType, PerformanceMetrics

# --- the document's example ---------------------------------------------
metrics = PerformanceMetrics(
    execution_time=1.5,
    cpu_time=0.8,
    gpu_time=0.7,
    cpu_usage=75.0,
    memory_usage=4.2,
    gpu_usage=85.0,
    bottleneck_type=BottleneckType.CPU_BOUND,
    bottleneck_severity=0.8
)
# --------------------------------------------------------------------------

assert metrics.execution_time == 1.5
assert metrics.cpu_time == 0.8
assert metrics.gpu_time == 0.7
assert metrics.cpu_usage == 75.0
assert metrics.memory_usage == 4.2
assert metrics.gpu_usage == 85.0
assert metrics.bottleneck_type == BottleneckType.CPU_BOUND
assert metrics.bottleneck_severity == 0.8

print("metrics:", metrics)
print("as dict:", metrics.to_dict())
