"""stall: find out why a PyTorch training run is slow.

This is the thin Python surface over stall's C core (``stall._native``).
What works today:

- ``Session(name, ...)``: start (or join) a session; spans of this process,
  and of child processes that inherit ``STALL_SESSION_DIR``, are recorded
  into its shared-memory directory.
- ``span(name, kind=SpanKind.OTHER)``: a context manager and decorator that
  records one span; ``begin(kind, name)`` / ``end(arg=0)`` for hot loops.
- ``Reader(dir)``: drains the records of every process of a session.

- The API of the seeds (issue 4), backed by the C engine:
  ProfilingConfig, ProfilingLevel, PerformanceMetrics, BottleneckType,
  BottleneckProfiler(Config), AdvancedProfiler, CPUMemoryProfiler,
  GPUProfiler, DataLoadingProfiler(Config), PreprocessingProfiler(Config),
  CodeOptimizer, PerformanceMonitor, profile_function, profile_context.
  The DataLoader search is stall.tuner, the preprocessing analysis
  stall.preprocessing; monitoring (issue 9) methods raise
  NotImplementedError naming their issue.
"""

import enum as _enum
import functools as _functools
import inspect as _inspect

from . import _native
from ._native import (
    REC_HAS_CPU,
    REC_INSTANT,
    REC_OPEN,
    REC_SESSION_BEGIN,
    REC_SESSION_END,
    REC_TRUNCATED,
    Reader,
    Record,
    Session,
    begin,
    end,
    instant,
    intern,
    kind_name,
    now_ns,
    session_dir,
    set_process_label,
)

__version__ = _native.__version__

__all__ = [
    "__version__",
    "SpanKind",
    "span",
    "Session",
    "Reader",
    "Record",
    "begin",
    "end",
    "instant",
    "intern",
    "kind_name",
    "now_ns",
    "session_dir",
    "set_process_label",
    "REC_HAS_CPU",
    "REC_INSTANT",
    "REC_TRUNCATED",
    "REC_SESSION_BEGIN",
    "REC_SESSION_END",
    "REC_OPEN",
    "ProfilingLevel",
    "BottleneckType",
    "PerformanceMetrics",
    "ProfilingConfig",
    "BottleneckProfilerConfig",
    "DataLoadingProfilerConfig",
    "PreprocessingProfilerConfig",
]


class SpanKind(_enum.IntEnum):
    """What a span is doing (stall_kind_t). Values are stored in records."""

    OTHER = _native.KIND_OTHER
    DATA_LOADING = _native.KIND_DATA_LOADING
    PREPROCESSING = _native.KIND_PREPROCESSING
    CPU_COMPUTE = _native.KIND_CPU_COMPUTE
    GPU_COMPUTE = _native.KIND_GPU_COMPUTE
    TRANSFER = _native.KIND_TRANSFER
    IO = _native.KIND_IO
    DATA_WAIT = _native.KIND_DATA_WAIT
    STEP = _native.KIND_STEP
    SESSION = _native.KIND_SESSION


_intern = _native.intern


def _span_kind_arg(name, kind):
    """Checks span()'s arguments the slow way; returns kind as a SpanKind."""
    if not isinstance(name, str):
        raise TypeError(f"span(): name must be a str, not {type(name).__name__}")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise TypeError(f"span(): kind must be a SpanKind or an int, not {type(kind).__name__}")
    if not 0 <= kind < _native.KIND_COUNT:
        raise ValueError(f"span(): kind must be a span kind in 0..{_native.KIND_COUNT - 1}, got {kind!r}")
    return SpanKind(kind)


class span:
    """Record a span named ``name`` of ``kind`` around a block or a function.

    As a context manager::

        with stall.span("decode", stall.SpanKind.PREPROCESSING):
            ...

    As a decorator (each call is one span)::

        @stall.span("forward", stall.SpanKind.CPU_COMPUTE)
        def forward(batch): ...

    The span is ended however the block or the function exits; an exception
    propagates unchanged. A span object holds no per-use state: one object may
    be entered again, nested and used from several threads. The name is
    interned once, when the object is made. Generator and coroutine
    functions cannot be decorated (a span belongs to one thread's stack, and
    a suspended frame would leave it open).
    """

    __slots__ = ("_name", "_kind", "_id")

    def __init__(self, name, kind=SpanKind.OTHER):
        if type(name) is not str or type(kind) is not SpanKind:
            kind = _span_kind_arg(name, kind)
        try:
            self._id = _intern(name)
        except ValueError as e:  # empty, or a NUL character
            raise ValueError(str(e).replace("intern()", "span()", 1)) from None
        self._name = name
        self._kind = kind

    @property
    def name(self):
        return self._name

    @property
    def kind(self):
        return self._kind

    def __enter__(self):
        begin(self._kind, self._id)
        return self

    def __exit__(self, exc_type, exc, tb):
        end()
        return False

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"span(): can decorate a function, not {type(fn).__name__}")
        if (
            _inspect.iscoroutinefunction(fn)
            or _inspect.isgeneratorfunction(fn)
            or _inspect.isasyncgenfunction(fn)
        ):
            raise TypeError(
                f"span(): cannot decorate {getattr(fn, '__qualname__', fn)!r}: a generator or "
                "coroutine function suspends with its span open; use `with span(...)` inside it"
            )
        kind, name_id = self._kind, self._id

        @_functools.wraps(fn)
        def wrapper(*args, **kwargs):
            begin(kind, name_id)
            try:
                return fn(*args, **kwargs)
            finally:
                end()

        return wrapper

    def __reduce__(self):
        # name ids are per process: a copy in another process interns again
        return (span, (self._name, self._kind))

    def __repr__(self):
        return f"stall.span({self._name!r}, SpanKind.{self._kind.name})"


from .types import BottleneckType, PerformanceMetrics, ProfilingLevel  # noqa: E402
from .config import (  # noqa: E402
    BottleneckProfilerConfig,
    DataLoadingProfilerConfig,
    PreprocessingProfilerConfig,
    ProfilingConfig,
)
from .profilers import (  # noqa: E402
    AdvancedProfiler,
    BottleneckProfiler,
    CodeOptimizer,
    CPUMemoryProfiler,
    DataLoadingProfiler,
    GPUProfiler,
    PerformanceMonitor,
    PreprocessingProfiler,
    ProfilingSession,
    profile_context,
    profile_function,
)
from . import profilers as _profilers  # noqa: E402

__all__ += _profilers.__all__

from .prometheus import serve_prometheus  # noqa: E402

__all__ += ["serve_prometheus"]
