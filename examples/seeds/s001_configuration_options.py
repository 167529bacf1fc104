"""Seed 001 ("Code Profiling and Bottleneck Detection System"), section
"Configuration Options" (Bottleneck Profiler, Data Loading Profiler and
Preprocessing Profiler Configuration).

The document's three examples here are the dataclass definitions of
BottleneckProfilerConfig, DataLoadingProfilerConfig and
PreprocessingProfilerConfig with their defaults. This script reproduces them
as a check: each config built with no arguments must be a dataclass whose
fields and defaults are the ones the document lists (the same names, in the
same order, with the same default values).

Shows: each config's fields and defaults.
"""

import dataclasses

from stall import (BottleneckProfilerConfig, DataLoadingProfilerConfig,
                   PreprocessingProfilerConfig, ProfilingLevel)

DOCUMENTED = {
    BottleneckProfilerConfig: dict(
        profiling_level=ProfilingLevel.DETAILED,
        enable_real_time_monitoring=True,
        enable_memory_tracking=True,
        enable_gpu_tracking=True,
        enable_cpu_tracking=True,
        enable_io_tracking=True,
        sampling_interval=0.1,  # seconds
        bottleneck_threshold=0.05,  # 5% of total time
        memory_threshold=0.8,  # 80% of available memory
        gpu_threshold=0.9,  # 90% of GPU memory
        auto_optimize=False,
        save_profiles=True,
        profile_output_dir="bottleneck_profiles",
    ),
    DataLoadingProfilerConfig: dict(
        enable_memory_tracking=True,
        enable_gpu_tracking=True,
        enable_cpu_tracking=True,
        enable_io_tracking=True,
        profiling_duration=60,  # seconds
        batch_size_range=[16, 32, 64, 128],
        worker_range=[0, 2, 4, 8],
        save_profiles=True,
        profile_output_dir="data_loading_profiles",
        auto_optimize=False,
    ),
    PreprocessingProfilerConfig: dict(
        enable_memory_tracking=True,
        enable_gpu_tracking=True,
        enable_cpu_tracking=True,
        enable_io_tracking=True,
        profiling_duration=60,  # seconds
        batch_size_range=[1, 8, 16, 32, 64],
        enable_caching=True,
        cache_size=1000,
        save_profiles=True,
        profile_output_dir="preprocessing_profiles",
        auto_optimize=False,
    ),
}

for cls, documented in DOCUMENTED.items():
    assert dataclasses.is_dataclass(cls), f"{cls.__name__} is not a dataclass"
    config = cls()
    names = [f.name for f in dataclasses.fields(cls)]
    assert names[:len(documented)] == list(documented), (cls.__name__, names)
    for name, value in documented.items():
        got = getattr(config, name)
        assert got == value, f"{cls.__name__}.{name} defaults to {got!r}, documented {value!r}"
    # list defaults must not be shared between instances
    for name, value in documented.items():
        if isinstance(value, list):
            assert getattr(cls(), name) is not getattr(config, name), f"{cls.__name__}.{name} shared"
    print(f"{cls.__name__}:")
    for name in names:
        print(f"    {name} = {getattr(config, name)!r}")
