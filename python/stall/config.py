"""stall.config: the configuration dataclasses of the seeds' API.

Every field is checked in __post_init__ (and again by validate(), for a
config changed after construction): a wrong type raises TypeError, a bad
value ValueError, both naming the class and the field. Units are the
seeds': ProfilingConfig thresholds are percents (cpu_threshold=90.0),
BottleneckProfilerConfig memory/gpu thresholds are shares (0.8).
"""

import dataclasses as _dc
import math as _math
from typing import List, Optional

from .types import ProfilingLevel

__all__ = [
    "ProfilingConfig",
    "BottleneckProfilerConfig",
    "DataLoadingProfilerConfig",
    "PreprocessingProfilerConfig",
]


def _fail_type(cls, name, want, value):
    raise TypeError(f"{cls}.{name} must be {want}, not {type(value).__name__} ({value!r})")


def _bool(cls, name, v):
    if not isinstance(v, bool):
        _fail_type(cls, name, "a bool", v)


def _num(cls, name, v, lo=None, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _fail_type(cls, name, "a number", v)
    if not _math.isfinite(v):
        raise ValueError(f"{cls}.{name} must be finite, got {v!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{cls}.{name} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{cls}.{name} must be {'<' if hi_open else '<='} {hi}, got {v!r}")


def _int(cls, name, v, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        _fail_type(cls, name, "an int", v)
    if lo is not None and v < lo:
        raise ValueError(f"{cls}.{name} must be >= {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{cls}.{name} must be <= {hi}, got {v!r}")


def _level(cls, name, v):
    if not isinstance(v, ProfilingLevel):
        _fail_type(cls, name, "a ProfilingLevel", v)


def _str(cls, name, v):
    if not isinstance(v, str):
        _fail_type(cls, name, "a str", v)
    if not v or "\0" in v:
        raise ValueError(f"{cls}.{name} must be a non-empty path without NUL, got {v!r}")


def _int_list(cls, name, v, lo):
    if not isinstance(v, (list, tuple)):
        _fail_type(cls, name, "a list of int", v)
    if not v:
        raise ValueError(f"{cls}.{name} must not be empty")
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"{cls}.{name}[{i}] must be an int, not {type(x).__name__} ({x!r})")
        if x < lo:
            raise ValueError(f"{cls}.{name}[{i}] must be >= {lo}, got {x!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"{cls}.{name} has duplicate values: {list(v)!r}")


class _Validated:
    _checks = ()

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every field; TypeError/ValueError naming the field."""
        cls = type(self).__name__
        for name, check, args in self._checks:
            check(cls, name, getattr(self, name), *args)
        return self

    def to_dict(self):
        d = _dc.asdict(self)
        for k, v in d.items():
            if isinstance(v, ProfilingLevel):
                d[k] = v.value
        return d


@_dc.dataclass
class ProfilingConfig(_Validated):
    """Settings of AdvancedProfiler, CPUMemoryProfiler, GPUProfiler,
    DataLoadingProfiler, PerformanceMonitor, profile_context (seed
    "advanced code profiling").

    sampling_rate: share of profile_dataloader / profile_preprocessing
    iterations that are timed (0 < r <= 1). sampling_interval: the system
    sampler's interval in seconds; None takes the level's (1 s for BASIC
    and PRODUCTION, 100 ms otherwise). cpu/memory/gpu_threshold: percents
    at which CPU_BOUND / MEMORY_PRESSURE are reported. bottleneck_threshold:
    share of wall time from which an operation is a finding.
    enable_tracemalloc: Python allocation tracing (never at PRODUCTION).
    max_samples: points kept per metric series (bounded history).
    PerformanceMonitor (stall.monitor): monitoring_interval (s) between
    reads; alert_threshold: lowest severity (0..1) handed to alert
    callbacks; oom_horizon (s): alert when memory is predicted to run out
    sooner; alert_log: JSON-lines file for alerts and findings ("-":
    stderr; None: none).
    """

    enabled: bool = True
    level: ProfilingLevel = ProfilingLevel.DETAILED
    sampling_rate: float = 1.0
    auto_optimize: bool = False
    enable_monitoring: bool = False
    monitoring_interval: float = 1.0
    alert_threshold: float = 0.8
    enable_tracemalloc: bool = False
    max_samples: int = 1200
    cpu_threshold: float = 90.0
    memory_threshold: float = 90.0
    gpu_threshold: float = 95.0
    bottleneck_threshold: float = 0.05
    sampling_interval: Optional[float] = None
    enable_gpu_profiling: bool = True
    oom_horizon: float = 1800.0
    alert_log: Optional[str] = None

    _checks = (
        ("enabled", _bool, ()),
        ("level", _level, ()),
        ("sampling_rate", _num, (0.0, 1.0, True, False)),
        ("auto_optimize", _bool, ()),
        ("enable_monitoring", _bool, ()),
        ("monitoring_interval", _num, (0.001, 86400.0)),
        ("alert_threshold", _num, (0.0, 1.0)),
        ("enable_tracemalloc", _bool, ()),
        ("max_samples", _int, (16, 1_000_000)),  # the engine's bounds
        ("cpu_threshold", _num, (0.0, 100.0)),
        ("memory_threshold", _num, (0.0, 100.0)),
        ("gpu_threshold", _num, (0.0, 100.0)),
        ("bottleneck_threshold", _num, (0.0, 1.0)),
        ("enable_gpu_profiling", _bool, ()),
        ("oom_horizon", _num, (0.0, 365 * 86400.0, True)),
    )

    def validate(self):
        super().validate()
        if self.sampling_interval is not None:
            _num(type(self).__name__, "sampling_interval", self.sampling_interval, 0.001, 3600.0)
        if self.alert_log is not None:
            _str(type(self).__name__, "alert_log", self.alert_log)
        return self

    @property
    def effective_sampling_interval(self) -> float:
        return self.sampling_interval if self.sampling_interval is not None else self.level.sampling_interval

    @property
    def tracemalloc_on(self) -> bool:
        return self.enable_tracemalloc and self.level is not ProfilingLevel.PRODUCTION


@_dc.dataclass
class BottleneckProfilerConfig(_Validated):
    """Settings of BottleneckProfiler (seed "bottleneck detection").

    sampling_interval: system sampler interval (s). bottleneck_threshold:
    share of the session's wall time from which an operation is a finding.
    memory_threshold / gpu_threshold: used shares (0..1) from which
    MEMORY_PRESSURE is reported. cpu_threshold (stall's addition): percent
    of all cores busy from which CPU_BOUND is reported.
    enable_tracemalloc (stall's addition): Python allocation tracing, only
    at COMPREHENSIVE.
    """

    profiling_level: ProfilingLevel = ProfilingLevel.DETAILED
    enable_real_time_monitoring: bool = True
    enable_memory_tracking: bool = True
    enable_gpu_tracking: bool = True
    enable_cpu_tracking: bool = True
    enable_io_tracking: bool = True
    sampling_interval: float = 0.1
    bottleneck_threshold: float = 0.05
    memory_threshold: float = 0.8
    gpu_threshold: float = 0.9
    auto_optimize: bool = False
    save_profiles: bool = True
    profile_output_dir: str = "bottleneck_profiles"
    cpu_threshold: float = 90.0
    enable_tracemalloc: bool = False

    _checks = (
        ("profiling_level", _level, ()),
        ("enable_real_time_monitoring", _bool, ()),
        ("enable_memory_tracking", _bool, ()),
        ("enable_gpu_tracking", _bool, ()),
        ("enable_cpu_tracking", _bool, ()),
        ("enable_io_tracking", _bool, ()),
        ("sampling_interval", _num, (0.001, 3600.0)),
        ("bottleneck_threshold", _num, (0.0, 1.0)),
        ("memory_threshold", _num, (0.0, 1.0)),
        ("gpu_threshold", _num, (0.0, 1.0)),
        ("auto_optimize", _bool, ()),
        ("save_profiles", _bool, ()),
        ("profile_output_dir", _str, ()),
        ("cpu_threshold", _num, (0.0, 100.0)),
        ("enable_tracemalloc", _bool, ()),
    )

    @property
    def effective_sampling_interval(self) -> float:
        return self.sampling_interval

    @property
    def tracemalloc_on(self) -> bool:
        return self.enable_tracemalloc and self.profiling_level is ProfilingLevel.COMPREHENSIVE


# the checks of the fields DataLoadingProfilerConfig and
# PreprocessingProfilerConfig share (both seeds list them in this order)
_SEARCH_CHECKS_HEAD = (
        ("enable_memory_tracking", _bool, ()),
        ("enable_gpu_tracking", _bool, ()),
        ("enable_cpu_tracking", _bool, ()),
        ("enable_io_tracking", _bool, ()),
        ("profiling_duration", _num, (0.0, 7 * 86400.0, True)),
        ("batch_size_range", _int_list, (1,)),
)
_SEARCH_CHECKS_TAIL = (
        ("save_profiles", _bool, ()),
        ("profile_output_dir", _str, ()),
        ("auto_optimize", _bool, ()),
)


@_dc.dataclass
class DataLoadingProfilerConfig(_Validated):
    """Settings of DataLoadingProfiler's configuration search (seed
    "bottleneck detection"); profiling_duration in seconds."""

    enable_memory_tracking: bool = True
    enable_gpu_tracking: bool = True
    enable_cpu_tracking: bool = True
    enable_io_tracking: bool = True
    profiling_duration: int = 60
    batch_size_range: List[int] = _dc.field(default_factory=lambda: [16, 32, 64, 128])
    worker_range: List[int] = _dc.field(default_factory=lambda: [0, 2, 4, 8])
    save_profiles: bool = True
    profile_output_dir: str = "data_loading_profiles"
    auto_optimize: bool = False

    _checks = _SEARCH_CHECKS_HEAD + (("worker_range", _int_list, (0,)),) + _SEARCH_CHECKS_TAIL


@_dc.dataclass
class PreprocessingProfilerConfig(_Validated):
    """Settings of PreprocessingProfiler (seed "bottleneck detection")."""

    enable_memory_tracking: bool = True
    enable_gpu_tracking: bool = True
    enable_cpu_tracking: bool = True
    enable_io_tracking: bool = True
    profiling_duration: int = 60
    batch_size_range: List[int] = _dc.field(default_factory=lambda: [1, 8, 16, 32, 64])
    enable_caching: bool = True
    cache_size: int = 1000
    save_profiles: bool = True
    profile_output_dir: str = "preprocessing_profiles"
    auto_optimize: bool = False

    _checks = _SEARCH_CHECKS_HEAD + (("enable_caching", _bool, ()), ("cache_size", _int, (0,))) + _SEARCH_CHECKS_TAIL
