"""stall._engine: the one process-wide transport and engine behind the API.

The first profiler that needs them creates a `_native.Session` (the shared
memory session directory, exported as STALL_SESSION_DIR so spawned
DataLoader workers join it) and a `_native.Engine` (reader, aggregator,
sampler) on that directory, started once. Profiler sessions map to
engine.session_begin/end with ids from a counter. In a child process
(forked, or spawned with STALL_SESSION_DIR inherited) the engine is never
used: the child only records spans into its own ring file, and the
parent's engine aggregates them. Under `stall run` (STALL_RUN set; the CLI
is the session's one draining reader) a process that inherited the session
and asks for an engine gets an observer engine instead (_native.Engine with
observer=True): it reads the same rings beside the CLI without disturbing
it. Glue only: every number comes from C.
"""

import atexit as _atexit
import itertools as _itertools
import os as _os
import threading as _threading
import time as _time

from . import _native
from .types import BottleneckType

__all__ = ["transport", "engine", "is_child", "new_session_id", "KIND_OF", "TYPE_OF_KIND"]

_lock = _threading.RLock()
_pid = None          # pid of the process that created the transport
_session = None      # _native.Session
_engine = None       # _native.Engine
_engine_pid = None   # pid of the process that created _engine
_inherited = _os.environ.get("STALL_SESSION_DIR")  # set before we were imported: a spawned child
_ids = _itertools.count(1)

_K = _native
KIND_OF = {
    BottleneckType.DATA_LOADING: _K.KIND_DATA_LOADING,
    BottleneckType.INSUFFICIENT_WORKERS: _K.KIND_DATA_LOADING,
    BottleneckType.SAMPLER_OVERHEAD: _K.KIND_DATA_LOADING,
    BottleneckType.COLLATE_FUNCTION_SLOW: _K.KIND_DATA_LOADING,
    BottleneckType.BATCH_SIZE_INEFFICIENCY: _K.KIND_DATA_LOADING,
    BottleneckType.PREPROCESSING: _K.KIND_PREPROCESSING,
    BottleneckType.PREPROCESSING_BOTTLENECK: _K.KIND_PREPROCESSING,
    BottleneckType.VECTORIZATION_INEFFICIENT: _K.KIND_PREPROCESSING,
    BottleneckType.CACHING_MISSED: _K.KIND_PREPROCESSING,
    BottleneckType.BATCH_SIZE_INEFFICIENT: _K.KIND_PREPROCESSING,
    BottleneckType.ALGORITHM_INEFFICIENT: _K.KIND_PREPROCESSING,
    BottleneckType.CPU_COMPUTATION: _K.KIND_CPU_COMPUTE,
    BottleneckType.CPU_BOUND: _K.KIND_CPU_COMPUTE,
    BottleneckType.CPU_INTENSIVE: _K.KIND_CPU_COMPUTE,
    BottleneckType.MODEL_FORWARD: _K.KIND_CPU_COMPUTE,
    BottleneckType.MODEL_BACKWARD: _K.KIND_CPU_COMPUTE,
    BottleneckType.OPTIMIZER_STEP: _K.KIND_CPU_COMPUTE,
    BottleneckType.GPU_COMPUTATION: _K.KIND_GPU_COMPUTE,
    BottleneckType.GPU_BOUND: _K.KIND_GPU_COMPUTE,
    BottleneckType.GPU_UNDERUTILIZED: _K.KIND_GPU_COMPUTE,
    BottleneckType.GPU_TRANSFER_OVERHEAD: _K.KIND_TRANSFER,
    BottleneckType.DATA_TRANSFER: _K.KIND_TRANSFER,
    BottleneckType.SLOW_DISK_IO: _K.KIND_IO,
    BottleneckType.I_O_BOUND: _K.KIND_IO,
    BottleneckType.IO_BOUND: _K.KIND_IO,
    BottleneckType.IO_OPERATIONS: _K.KIND_IO,
    BottleneckType.NETWORK_BOUND: _K.KIND_IO,
    BottleneckType.SYNCHRONIZATION: _K.KIND_DATA_WAIT,
}
for _t in BottleneckType:
    KIND_OF.setdefault(_t, _K.KIND_OTHER)  # memory kinds, UNKNOWN

# the type reported for an operation whose type this profiler never saw
# (e.g. recorded by a spawned worker): the category of its span kind
TYPE_OF_KIND = {
    _K.KIND_OTHER: BottleneckType.UNKNOWN,
    _K.KIND_DATA_LOADING: BottleneckType.DATA_LOADING,
    _K.KIND_PREPROCESSING: BottleneckType.PREPROCESSING,
    _K.KIND_CPU_COMPUTE: BottleneckType.CPU_COMPUTATION,
    _K.KIND_GPU_COMPUTE: BottleneckType.GPU_COMPUTATION,
    _K.KIND_TRANSFER: BottleneckType.DATA_TRANSFER,
    _K.KIND_IO: BottleneckType.IO_OPERATIONS,
    _K.KIND_DATA_WAIT: BottleneckType.DATA_LOADING,
    _K.KIND_STEP: BottleneckType.UNKNOWN,
}

if hasattr(_native, "register_kind"):
    for _t, _k in KIND_OF.items():
        _native.register_kind(_t, _k)


def is_child():
    """True in a process that must only record: a fork of the process that
    owns the engine, or a process that inherited STALL_SESSION_DIR."""
    if _pid is not None:
        return _os.getpid() != _pid
    return bool(_inherited) and _os.environ.get("STALL_SESSION_DIR") == _inherited


def transport(thread_cpu_time=False):
    """Make sure this process records into a session directory; returns it.

    In the owning process this creates the transport once (thread_cpu_time
    turns on per-span CPU time, process-wide, from then on). In a child it
    creates nothing: the C layer records into the inherited directory.
    """
    global _session, _pid
    if is_child():
        if thread_cpu_time:
            _native.Session("stall-worker", thread_cpu_time=True).stop()
        return _native.session_dir()
    with _lock:
        if _session is None:
            _session = _native.Session("stall", thread_cpu_time=bool(thread_cpu_time), no_export=False)
            _pid = _os.getpid()
        elif thread_cpu_time:
            # options of the transport hold for the process once set
            _native.Session("stall-cpu", thread_cpu_time=True).stop()
        return _session.dir


def _observes():
    """True where engine() makes an observer engine: under `stall run`, in a
    process that inherited the session and owns no transport."""
    return bool(_os.environ.get("STALL_RUN")) and _pid is None and is_child()


def engine(interval=0.1, max_samples=1200, thread_cpu_time=False):
    """The process-wide engine, created and started on first use with this
    sampling interval (later callers share it). Under `stall run`, in a
    process that inherited the session: an observer engine on it. Otherwise
    RuntimeError in a child, and in a fork of a process that has an engine."""
    global _engine, _engine_pid
    d = transport(thread_cpu_time)
    observer = _observes()
    if observer:
        d = _os.environ["STALL_SESSION_DIR"]
    if (is_child() and not observer) or (_engine is not None and _engine_pid != _os.getpid()):
        raise RuntimeError(
            "stall: this process is a DataLoader worker or a forked child; it records spans "
            "into its parent's session, and the parent's profiler reports them"
        )
    with _lock:
        if _engine is None:
            e = _native.Engine(d, interval=float(interval), max_samples=int(max_samples), observer=observer)
            # a baseline pair of samples (once per process, ~20 ms): rates such
            # as cpu_usage need two samples a clock tick apart, and code reads
            # current_metrics right after creating its first profiler
            e.sample_now()
            _time.sleep(0.02)
            e.sample_now()
            e.start()
            _engine, _engine_pid = e, _os.getpid()
        return _engine


def engine_if_running():
    """The engine when this process owns a started one, else None."""
    if _engine_pid != _os.getpid():
        return None
    return _engine


def new_session_id():
    return next(_ids)


def now_ns():
    return _native.now_ns()


@_atexit.register
def _shutdown():
    global _engine
    if _engine is not None and _engine_pid == _os.getpid():
        try:
            _engine.close()
        except Exception:
            pass
        _engine = None
