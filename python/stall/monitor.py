"""stall.monitor: PerformanceMonitor (seed "advanced code profiling") and
the structured logs of alerts and findings.

The monitoring itself is C (_native.Monitor, src/analyze/monitor.c): a
thread that reads the process-wide engine every monitoring_interval,
checks the alert rules, finds spikes, level shifts and trends in step
time, throughput and memory, and predicts when memory runs out. No Python
runs on that path. This module only delivers what it queues: one Python
thread takes each alert, writes it to the JSON-lines log and to Python
logging (logger "stall.monitor"), and calls the alert callbacks; an async
callback runs on the event loop that was running where it was added, or,
when there was none, on a private event loop thread.

Severity and alert_threshold: every alert has a severity in 0..1 (the
rule's; anomalies: oom 0.95, shift and trend 0.8, spike 0.6). Alerts below
ProfilingConfig.alert_threshold are logged (at INFO) and counted as
suppressed, not handed to callbacks: raising alert_threshold means fewer
alerts, as the seed's troubleshooting section expects.
"""

import collections as _collections
import datetime as _datetime
import inspect as _inspect
import json as _json
import logging as _logging
import math as _math
import os as _os
import sys as _sys
import threading as _threading
import time as _time
import weakref as _weakref

from . import _autohook, _engine, _native
from .config import ProfilingConfig

__all__ = ["PerformanceMonitor", "set_json_log", "log_finding", "METRICS"]

log = _logging.getLogger("stall.monitor")
findings_log = _logging.getLogger("stall.findings")

METRICS = tuple(_native.mon_metric_names())

_NS = 1e-9
_GB = 1e9

# ------------------------------------------------------------ JSON lines

_json_lock = _threading.Lock()
_json_out = None     # a file object, or None
_json_owned = False  # we opened it (close it when replaced)


def set_json_log(target):
    """Write every alert and finding as one JSON object per line to target:
    a path (appended), "-" for stderr, a file object with write(), or None
    to stop. Process-wide: the monitors' alerts and the profilers' findings
    of this process go there. The shape is the one `stall run --log` writes:
    {"ts": ISO-8601 UTC, "level", "event": "alert"|"alert_resolved"|"finding", ...}."""
    global _json_out, _json_owned
    if target is None:
        out, owned = None, False
    elif target == "-":
        out, owned = _sys.stderr, False
    elif isinstance(target, (str, bytes, _os.PathLike)):
        try:
            out, owned = open(target, "a", encoding="utf-8", buffering=1), True
        except OSError as e:
            raise ValueError(f"set_json_log(): cannot open {target!r} for appending: {e.strerror}") from None
    elif callable(getattr(target, "write", None)):
        out, owned = target, False
    else:
        raise TypeError(f"set_json_log(): target must be a path, '-', a writable file or None, not "
                        f"{type(target).__name__}")
    with _json_lock:
        old, old_owned = _json_out, _json_owned
        _json_out, _json_owned = out, owned
    if old is not None and old_owned:
        try:
            old.close()
        except OSError:
            pass


def _clean(v):
    if isinstance(v, float) and not _math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _json_line(level, event, fields):
    with _json_lock:
        out = _json_out
        if out is None:
            return
        now = _datetime.datetime.now(_datetime.timezone.utc)
        rec = {"ts": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "level": level, "event": event}
        rec.update(_clean(fields))
        try:
            out.write(_json.dumps(rec, separators=(",", ":"), default=str) + "\n")
            out.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed stream must not reach the training


def log_finding(finding, session=None):
    """One finding (a dict of a summary's "bottlenecks") to Python logging
    (logger "stall.findings", INFO: the summaries already return them) and
    the JSON-lines log."""
    sev = finding.get("severity") or 0.0
    findings_log.info("%s (severity %.2f): %s", finding.get("type"), sev, finding.get("summary") or "",
                      extra={"stall_finding": finding})
    fields = {"session": session}
    for k in ("type", "title", "severity", "summary", "evidence", "suggestions", "operation"):
        if k in finding:
            fields[k] = finding[k]
    _json_line("info", "finding", fields)


# ------------------------------------------------------- the async side

_private_loop = None
_private_lock = _threading.Lock()


def _loop_thread():
    """A private event loop in a daemon thread, for async callbacks added
    where no loop was running."""
    global _private_loop
    with _private_lock:
        if _private_loop is None or _private_loop.is_closed():
            import asyncio

            loop = asyncio.new_event_loop()
            t = _threading.Thread(target=loop.run_forever, name="stall-alert-loop", daemon=True)
            t.start()
            _private_loop = loop
        return _private_loop


def _callback_failed(fn, exc):
    log.error("stall: alert callback %s raised %s: %s", getattr(fn, "__qualname__", fn),
              type(exc).__name__, exc, exc_info=exc)


class _Callback:
    __slots__ = ("fn", "loop", "resolved")

    def __init__(self, fn, resolved):
        self.fn = fn
        self.resolved = resolved
        # asyncio costs ~80 ms to import: never at `import stall`; a loop can only
        # be running here when the program imported it already
        aio = _sys.modules.get("asyncio")
        try:
            self.loop = aio.get_running_loop() if aio is not None else None
        except RuntimeError:
            self.loop = None

    def call(self, alert):
        try:
            r = self.fn(alert)
        except Exception as e:  # never let a callback kill the delivery
            _callback_failed(self.fn, e)
            return
        if _inspect.isawaitable(r):
            loop = self.loop if self.loop is not None and not self.loop.is_closed() and self.loop.is_running() \
                else _loop_thread()
            import asyncio

            fut = asyncio.run_coroutine_threadsafe(_awaited(r), loop)
            fut.add_done_callback(lambda f, fn=self.fn: f.exception() and _callback_failed(fn, f.exception()))


async def _awaited(aw):
    return await aw


# ------------------------------------------------------------- monitor

_live = _weakref.WeakSet()  # started monitors, stopped at exit before the engine closes


class PerformanceMonitor:
    """Live monitoring with alerts (seed "advanced code profiling").

    config: a ProfilingConfig. monitoring_interval: seconds between reads
    of the engine (the C thread); alert_threshold: the lowest severity
    handed to callbacks; cpu_threshold / memory_threshold / gpu_threshold
    (percents): the default rules (host CPU busy for 30 s, host memory and
    GPU memory used for 5 s); oom_horizon: alert when memory is predicted
    to run out sooner (seconds); alert_log: a JSON-lines file ("-":
    stderr) for every alert. add_alert_rule adds your own.
    """

    def __init__(self, config=None):
        if config is None:
            config = ProfilingConfig()
        if not isinstance(config, ProfilingConfig):
            raise TypeError(f"PerformanceMonitor(): config must be a ProfilingConfig, not {type(config).__name__}")
        self.config = config.validate()
        iv = float(config.monitoring_interval)
        self._mon = _native.Monitor(interval=iv, loop_span=max(0.5, iv), min_severity=float(config.alert_threshold),
                                    oom_horizon=float(config.oom_horizon))
        self._mon.add_default_rules(memory=config.memory_threshold / 100.0, gpu=config.gpu_threshold / 100.0,
                                    cpu=config.cpu_threshold / 100.0)
        self._callbacks = []
        self._lock = _threading.Lock()
        self._thread = None
        self._alerts = _collections.deque(maxlen=100)  # the latest alert events, for the summary
        self._started_at = None
        self._stopped_at = None
        self._engine = None
        self._stop = False
        if config.alert_log is not None:
            set_json_log(config.alert_log)

    # -- configuration ----------------------------------------------------
    def add_alert_callback(self, callback, *, resolved=False):
        """Call callback(alert) for each alert at or above alert_threshold
        (and, with resolved=True, when its condition clears). alert is a dict:
        message, severity (0..1), type ("threshold", "spike", "shift",
        "trend", "oom"), state ("firing"/"resolved"), metric, value,
        threshold, baseline, rule, timestamp (time.time()). A coroutine
        function runs on the event loop running here now, else on a private
        loop thread; a plain one on the monitor's delivery thread."""
        if not callable(callback):
            raise TypeError(f"add_alert_callback(): callback must be callable, not {type(callback).__name__}")
        if not isinstance(resolved, bool):
            raise TypeError(f"add_alert_callback(): resolved must be a bool, not {type(resolved).__name__}")
        with self._lock:
            self._callbacks.append(_Callback(callback, resolved))

    def remove_alert_callback(self, callback):
        with self._lock:
            n = len(self._callbacks)
            self._callbacks = [c for c in self._callbacks if c.fn is not callback]
            if len(self._callbacks) == n:
                raise ValueError("remove_alert_callback(): that callback was not added")

    def add_alert_rule(self, metric, threshold, *, below=False, duration=0.0, hysteresis=0.0, severity=None,
                       name=None):
        """Alert when metric (one of stall.monitor.METRICS) stays above (below,
        with below=True) threshold for duration seconds; one alert until the
        value is back past threshold -/+ hysteresis. severity: 0..1 (default
        alert_threshold, so that it reaches the callbacks)."""
        if not isinstance(metric, str):
            raise TypeError(f"add_alert_rule(): metric must be a str, not {type(metric).__name__}")
        if metric not in METRICS:
            raise ValueError(f"add_alert_rule(): unknown metric {metric!r}; known: {', '.join(METRICS)}")
        if name is None:
            name = f"{metric}_{'low' if below else 'high'}"
        if severity is None:
            severity = float(self.config.alert_threshold)
        try:
            self._mon.add_rule(name, metric, threshold, below=below, for_s=duration, hysteresis=hysteresis,
                               severity=severity)
        except (TypeError, ValueError) as e:
            msg = str(e).replace("Monitor.add_rule()", "add_alert_rule()").replace("for_s", "duration")
            raise type(e)(msg) from None
        return name

    def remove_alert_rule(self, name):
        try:
            self._mon.remove_rule(name)
        except KeyError:
            raise KeyError(f"remove_alert_rule(): no rule named {name!r}") from None

    # -- running ----------------------------------------------------------
    @property
    def is_monitoring(self):
        return self._thread is not None

    def start_monitoring(self):
        """Start the C monitoring thread on the process-wide engine and the
        delivery thread. Starting a running monitor does nothing."""
        if self._thread is not None:
            return
        cfg = self.config
        iv = min(cfg.effective_sampling_interval, cfg.monitoring_interval)
        self._engine = _engine.engine(interval=iv, max_samples=cfg.max_samples)
        # the training loop's batches, waits and steps come from the DataLoader
        # instrumentation of `stall run` (installed once; never raises)
        _autohook.install()
        self._mon.start(self._engine)
        self._started_at = _time.time()
        self._stopped_at = None
        self._stop = False
        self._thread = _threading.Thread(target=self._deliver, name="stall-alerts", daemon=True)
        self._thread.start()
        _live.add(self)

    def stop_monitoring(self):
        """Stop the monitoring thread; alerts it raised are delivered before
        this returns. Stopping a stopped monitor does nothing."""
        t = self._thread
        if t is None:
            return
        self._mon.stop()
        self._stop = True
        self._mon.wake()
        if t is not _threading.current_thread():
            t.join(10.0)
        self._thread = None
        self._stopped_at = _time.time()
        _live.discard(self)

    def _deliver(self):
        while True:
            a = self._mon.next()
            if a is None:
                if self._stop:
                    # the C thread has stopped: deliver what is left, then end
                    while (a := self._mon.next(timeout=0)) is not None:
                        self._handle(a)
                    return
                continue
            self._handle(a)

    def _handle(self, a):
        alert = dict(a)
        alert["type"] = a["kind"]
        alert["timestamp"] = _time.time() - (_native.now_ns() - a["t_ns"]) * _NS
        firing = a["state"] == "firing"
        self._alerts.append(alert)
        level = _logging.WARNING if firing and not a["suppressed"] else _logging.INFO
        try:
            log.log(level, "stall alert%s: %s (severity %.2f)", "" if firing else " resolved", a["message"],
                    a["severity"], extra={"stall_alert": alert})
        except Exception:
            pass
        _json_line(_logging.getLevelName(level).lower(), "alert" if firing else "alert_resolved",
                   {k: alert[k] for k in ("type", "rule", "metric", "value", "threshold", "baseline", "severity",
                                          "suppressed", "message", "seq")})
        if a["suppressed"]:
            return
        with self._lock:
            cbs = list(self._callbacks)
        for cb in cbs:
            if firing or cb.resolved:
                cb.call(alert)

    # -- results ----------------------------------------------------------
    def get_alerts(self):
        """The latest alert events (at most 100), oldest first."""
        return list(self._alerts)

    def get_monitoring_summary(self):
        """What the monitor saw so far (also while it runs): avg/peak CPU
        (host, % of all cores) and memory (the process tree, GB), GPU, the
        loop's data-wait share, step time and throughput, alerts fired."""
        s = self._mon.summary()
        m = s["metrics"]

        def stat(name, key, scale=1.0):
            v = m[name][key]
            return None if v is None else v * scale

        dur = (s["last_ns"] - s["first_ns"]) * _NS if s["samples"] > 1 else 0.0
        batches = s["batches"]
        loop_s = m["step_time_s"]["avg"]
        out = {
            "is_monitoring": self.is_monitoring,
            "monitoring_interval": self.config.monitoring_interval,
            "samples": s["samples"],
            "monitoring_duration": dur,
            "start_time": self._started_at,
            "end_time": self._stopped_at,
            "avg_cpu_usage": stat("cpu_percent", "avg"),
            "peak_cpu_usage": stat("cpu_percent", "max"),
            "avg_process_cpu_cores": stat("tree_cpu_cores", "avg"),
            "peak_process_cpu_cores": stat("tree_cpu_cores", "max"),
            "avg_memory_usage": stat("memory_bytes", "avg", 1 / _GB),
            "peak_memory_usage": stat("memory_bytes", "max", 1 / _GB),
            "avg_host_memory_percent": stat("host_memory_used_share", "avg", 100.0),
            "peak_host_memory_percent": stat("host_memory_used_share", "max", 100.0),
            "avg_gpu_utilization": stat("gpu_util_percent", "avg"),
            "peak_gpu_utilization": stat("gpu_util_percent", "max"),
            "avg_gpu_memory_usage": stat("gpu_memory_used_bytes", "avg", 1 / _GB),
            "peak_gpu_memory_usage": stat("gpu_memory_used_bytes", "max", 1 / _GB),
            "total_batches": batches,
            "data_wait_time": s["data_wait_s"],
            "data_wait_share": stat("data_wait_share", "avg"),
            "avg_step_time": loop_s,
            "peak_step_time": stat("step_time_s", "max"),
            "avg_throughput": stat("throughput", "avg"),
            "alerts_fired": s["fired"],
            "alerts_delivered": s["fired"] - s["suppressed"],
            "alerts_suppressed": s["suppressed"],
            "alerts_resolved": s["resolved"],
            "alerts_dropped": s["dropped"],
            "active_alerts": s["active"],
            "alerts_by_type": s["fired_by_kind"],
            "anomalies": sum(s["fired_by_kind"][k] for k in ("spike", "shift", "trend")),
            "oom_prediction": {"host_seconds_left": s["oom_host_s"], "gpu_seconds_left": s["oom_gpu_s"]},
            "recent_alerts": [a for a in self._alerts if a["state"] == "firing"][-10:],
            "metrics": m,
            "monitor_memory_bytes": self._mon.memory_bytes(),
        }
        return out

    def __enter__(self):
        self.start_monitoring()
        return self

    def __exit__(self, *exc):
        self.stop_monitoring()
        return False


def _forget_in_child():
    """A forked child (a DataLoader worker) has none of the threads: its
    copies of the monitors are inert and never stopped there."""
    for mon in list(_live):
        mon._thread = None
    _live.clear()


_os.register_at_fork(after_in_child=_forget_in_child)


def _stop_all():
    for mon in list(_live):
        try:
            mon.stop_monitoring()
        except Exception:
            pass


# registered after stall._engine's: runs before the engine closes (atexit is LIFO)
import atexit as _atexit  # noqa: E402

_atexit.register(_stop_all)
