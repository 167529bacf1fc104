"""stall.prometheus: serve this process's profile for Prometheus.

``serve_prometheus()`` starts the C metrics server (``_native.MetricsServer``)
on the process-wide engine (the one the profilers share, see ``stall._engine``):
a thread of its own answers ``GET /metrics`` with the text exposition format,
rendered at scrape time, so nothing runs on the training loop's path. Every
series carries host, and rank and world_size under torch.distributed (or from
the RANK and WORLD_SIZE variables torchrun sets). Glue only: every number and
every line comes from C.
"""

import atexit as _atexit
import os as _os
import sys as _sys
import threading as _threading

from . import _engine, _native

__all__ = ["serve_prometheus"]

_lock = _threading.Lock()
_servers = []  # stopped at exit, before the engine closes


def _distributed_labels():
    """rank and world_size of torch.distributed when it is initialized, else
    from RANK and WORLD_SIZE; {} when neither says. torch is never imported
    here: a program that uses torch.distributed imported it already."""
    torch = _sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return {"rank": str(dist.get_rank()), "world_size": str(dist.get_world_size())}
    except (RuntimeError, ValueError):
        pass
    out = {}
    for key, env in (("rank", "RANK"), ("world_size", "WORLD_SIZE")):
        value = _os.environ.get(env, "").strip()
        if value:
            out[key] = value
    return out


def serve_prometheus(address="127.0.0.1:9464", *, labels=None):
    """Serve the profile of this process (and of its DataLoader workers) on
    ``http://ADDRESS/metrics`` for Prometheus, and return the server.

    address: "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT" (host 127.0.0.1);
    port 0 picks a free port (see ``.port`` and ``.url``). labels: a dict of
    more constant labels; rank and world_size are added under
    torch.distributed (or from RANK / WORLD_SIZE) unless given. The server
    is a ``_native.MetricsServer``: ``.text()`` renders what a scrape gets,
    ``.stop()`` ends it (also a context manager); it is stopped at exit.

    Raises TypeError or ValueError naming the argument at fault, OSError
    when the address cannot be bound (port in use), RuntimeError in a
    DataLoader worker (the parent process serves the profile).
    """
    if labels is not None and not hasattr(labels, "items"):
        raise TypeError(f"serve_prometheus(): labels must be a dict of str to str, not {type(labels).__name__}")
    if address is None:
        address = "127.0.0.1:9464"
    if not isinstance(address, str):
        raise TypeError(
            f'serve_prometheus(): address must be a str such as "127.0.0.1:9464", not {type(address).__name__}'
        )
    merged = _distributed_labels()
    merged.update(dict(labels or {}))
    server = _native.MetricsServer(_engine.engine(), address, merged)
    with _lock:
        _servers[:] = [s for s in _servers if not s.stopped]
        _servers.append(server)
    return server


@_atexit.register
def _shutdown():
    # registered after stall._engine's own exit hook (imported above), so it
    # runs first: the servers let go of the engine before it is closed
    with _lock:
        servers, _servers[:] = list(_servers), []
    for server in servers:
        try:
            server.stop()
        except Exception:
            pass
