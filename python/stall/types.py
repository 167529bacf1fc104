"""stall.types: the enums and the metrics record of the seeds' API.

ProfilingLevel (what a level costs), BottleneckType (every value both
specification documents use: operation categories, resource kinds, and the
16 data-loading and preprocessing types) and PerformanceMetrics (one
measurement, with to_dict()). Pure data: no measuring happens here.
"""

import dataclasses as _dc
import enum as _enum
from typing import Any, Dict, Optional

__all__ = ["ProfilingLevel", "BottleneckType", "PerformanceMetrics"]


class ProfilingLevel(_enum.Enum):
    """How much stall measures, and what that costs.

    - BASIC: spans (about 0.1-0.3 us each) + system sampling every 1 s.
    - DETAILED: spans + system sampling every 100 ms (the default).
    - COMPREHENSIVE: DETAILED + the thread CPU time of every span (about
      400 ns more per span, process-wide once on) + tracemalloc when the
      config enables it (slows Python allocations by 2-4x).
    - PRODUCTION: spans + 1 s sampling, never tracemalloc, bounded history
      (max_samples points per series).
    """

    BASIC = "basic"
    DETAILED = "detailed"
    COMPREHENSIVE = "comprehensive"
    PRODUCTION = "production"

    @property
    def cost(self) -> str:
        """One line saying what this level measures and what it costs."""
        return _LEVEL_COST[self]

    @property
    def sampling_interval(self) -> float:
        """The sampler's interval (s) this level asks for."""
        return 1.0 if self in (ProfilingLevel.BASIC, ProfilingLevel.PRODUCTION) else 0.1

    @property
    def thread_cpu_time(self) -> bool:
        """True when spans carry their thread CPU time (COMPREHENSIVE)."""
        return self is ProfilingLevel.COMPREHENSIVE


_LEVEL_COST = {
    ProfilingLevel.BASIC: "spans (~0.1-0.3 us each) + system sampling every 1 s",
    ProfilingLevel.DETAILED: "spans + system sampling every 100 ms",
    ProfilingLevel.COMPREHENSIVE: (
        "spans + 100 ms sampling + thread CPU time per span (~400 ns more per span) "
        "+ tracemalloc if enable_tracemalloc (2-4x slower Python allocations)"
    ),
    ProfilingLevel.PRODUCTION: "spans + system sampling every 1 s, no tracemalloc, bounded history",
}
for _m in ProfilingLevel:
    _m.__doc__ = _LEVEL_COST[_m]


class BottleneckType(_enum.Enum):
    """What an operation is, or what is slowing the run.

    Operation categories (the type given to profile_operation), resource
    kinds (seed "advanced code profiling": CPU_BOUND ...), and the data
    loading and preprocessing types of seed "bottleneck detection".
    """

    # operation categories
    DATA_LOADING = "data_loading"
    PREPROCESSING = "preprocessing"
    CPU_COMPUTATION = "cpu_computation"
    GPU_COMPUTATION = "gpu_computation"
    MEMORY_ALLOCATION = "memory_allocation"
    DATA_TRANSFER = "data_transfer"
    IO_OPERATIONS = "io_operations"
    SYNCHRONIZATION = "synchronization"
    MODEL_FORWARD = "model_forward"
    MODEL_BACKWARD = "model_backward"
    OPTIMIZER_STEP = "optimizer_step"
    UNKNOWN = "unknown"
    # resource kinds
    CPU_BOUND = "cpu_bound"
    GPU_BOUND = "gpu_bound"
    MEMORY_BOUND = "memory_bound"
    IO_BOUND = "io_bound"
    NETWORK_BOUND = "network_bound"
    # data loading bottlenecks
    SLOW_DISK_IO = "slow_disk_io"
    INSUFFICIENT_WORKERS = "insufficient_workers"
    MEMORY_PRESSURE = "memory_pressure"
    GPU_TRANSFER_OVERHEAD = "gpu_transfer_overhead"
    PREPROCESSING_BOTTLENECK = "preprocessing_bottleneck"
    BATCH_SIZE_INEFFICIENCY = "batch_size_inefficiency"
    SAMPLER_OVERHEAD = "sampler_overhead"
    COLLATE_FUNCTION_SLOW = "collate_function_slow"
    # preprocessing bottlenecks
    CPU_INTENSIVE = "cpu_intensive"
    MEMORY_INTENSIVE = "memory_intensive"
    GPU_UNDERUTILIZED = "gpu_underutilized"
    I_O_BOUND = "i_o_bound"
    VECTORIZATION_INEFFICIENT = "vectorization_inefficient"
    CACHING_MISSED = "caching_missed"
    BATCH_SIZE_INEFFICIENT = "batch_size_inefficient"
    ALGORITHM_INEFFICIENT = "algorithm_inefficient"


@_dc.dataclass
class PerformanceMetrics:
    """One measurement over a stretch of the run (seconds, percent, GB).

    Unknown is None, not 0: a field the collectors could not read (no GPU,
    an unreadable file) stays None.
    execution_time: wall seconds; cpu_time: CPU seconds of the process;
    gpu_time: seconds covered by GPU-computation spans; cpu_usage: percent
    of all cores busy (user + system, like psutil.cpu_percent());
    memory_usage: resident memory of the process in GB; gpu_usage: SM
    utilisation percent; gpu_memory_*: bytes from torch.cuda (or NVML);
    gpu_memory_fragmentation: 1 - allocated / reserved.
    """

    execution_time: float = 0.0
    cpu_time: Optional[float] = None
    gpu_time: Optional[float] = None
    cpu_usage: Optional[float] = None
    memory_usage: Optional[float] = None
    gpu_usage: Optional[float] = None
    bottleneck_type: Optional[Any] = None
    bottleneck_severity: float = 0.0
    process_cpu_usage: Optional[float] = None
    memory_used_share: Optional[float] = None
    gpu_memory_allocated: Optional[int] = None
    gpu_memory_reserved: Optional[int] = None
    gpu_memory_total: Optional[int] = None
    gpu_memory_fragmentation: Optional[float] = None
    io_read_bytes_per_s: Optional[float] = None
    io_write_bytes_per_s: Optional[float] = None
    python_memory_current: Optional[int] = None
    python_memory_peak: Optional[int] = None
    timestamp: Optional[float] = None
    custom_metrics: Dict[str, Any] = _dc.field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict of every field; an enum becomes its value."""
        d = _dc.asdict(self)
        bt = self.bottleneck_type
        d["bottleneck_type"] = bt.value if isinstance(bt, _enum.Enum) else bt
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PerformanceMetrics":
        """The inverse of to_dict (a known type value becomes a BottleneckType)."""
        names = {f.name for f in _dc.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        bt = kw.get("bottleneck_type")
        if isinstance(bt, str):
            try:
                kw["bottleneck_type"] = BottleneckType(bt)
            except ValueError:
                pass
        return cls(**kw)
