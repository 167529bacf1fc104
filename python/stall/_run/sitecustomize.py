"""stall's sitecustomize: instruments every Python process of `stall run`.

`stall run` puts this file's folder (<pkgroot>/stall/_run) and <pkgroot>
first on PYTHONPATH, so the interpreter imports it at start-up, in the main
program and in every Python child. When STALL_RUN is set it loads
stall._autohook (without running the stall package's __init__, which costs
tens of milliseconds in processes that may never use it) and installs it;
any failure (another Python version than the extension was built for, a
broken install) prints one line to stderr and the program runs normally.
Then it runs the sitecustomize this file shadows (the next one on sys.path,
e.g. Debian's /usr/lib/python3.X/sitecustomize.py), as the site module would.
"""

import os
import sys


def _stall_load():
    """Returns stall._autohook, loading stall._native and it by file path."""
    if "stall._autohook" in sys.modules:
        return sys.modules["stall._autohook"]
    if "stall" in sys.modules:
        import stall._autohook

        return stall._autohook
    import importlib._bootstrap as boot
    import importlib.machinery as mach

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mods = []

    def load(loader_class, name, path):
        loader = loader_class(name, path)
        spec = mach.ModuleSpec(name, loader, origin=path)
        spec.has_location = True
        mod = boot.module_from_spec(spec)
        sys.modules[name] = mod
        mods.append(name)
        loader.exec_module(mod)
        return mod
    try:
        if "stall._native" not in sys.modules:
            path = None
            for suffix in mach.EXTENSION_SUFFIXES:
                p = os.path.join(pkg, "_native" + suffix)
                if os.path.exists(p):
                    path = p
                    break
            if path is None:
                try:
                    built = sorted(n for n in os.listdir(pkg) if n.startswith("_native."))
                except OSError:
                    built = []
                raise ImportError("no stall._native for Python %d.%d in %s (found: %s)" % (
                    sys.version_info[0], sys.version_info[1], pkg, ", ".join(built) or "none"))
            load(mach.ExtensionFileLoader, "stall._native", path)
        return load(mach.SourceFileLoader, "stall._autohook", os.path.join(pkg, "_autohook.py"))
    except BaseException:
        for m in mods:
            sys.modules.pop(m, None)
        raise


def _stall_install():
    if os.environ.get("STALL_RUN", "") in ("", "0"):
        return
    try:
        _stall_load().install()
    except Exception as e:
        reason = ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")[:300]
        try:
            sys.stderr.write("stall: instrumentation off in this process: %s\n" % reason)
            sys.stderr.flush()
        except Exception:
            pass


def _stall_chain():
    """Runs the next sitecustomize on sys.path after this file's folder
    under the module name sitecustomize, reporting its errors as site does."""
    import importlib._bootstrap as boot
    import importlib.machinery as mach

    here = os.path.dirname(os.path.abspath(__file__))

    def same(p):
        try:
            return os.path.abspath(p or os.curdir) == here
        except Exception:
            return False

    path = list(sys.path)
    for i, p in enumerate(path):
        if same(p):
            path = path[i + 1:]
            break
    path = [p for p in path if not same(p)]
    spec = mach.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    if spec.origin and os.path.abspath(spec.origin) == os.path.abspath(__file__):
        return
    me = sys.modules.get("sitecustomize")
    mod = boot.module_from_spec(spec)
    sys.modules["sitecustomize"] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as err:
        if me is not None:
            sys.modules["sitecustomize"] = me
        else:
            sys.modules.pop("sitecustomize", None)
        if isinstance(err, ImportError) and err.name == "sitecustomize":
            return
        if sys.flags.verbose:
            sys.excepthook(*sys.exc_info())
        else:
            sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                             "%s: %s\n" % (err.__class__.__name__, err))


_stall_install()
try:
    _stall_chain()
except Exception as _e:
    sys.stderr.write("stall: could not run the next sitecustomize: %s: %s\n" % (type(_e).__name__, _e))
del _stall_install, _stall_chain
