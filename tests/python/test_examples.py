"""Runs every example of the seeds (examples/seeds/*.py) as a user would.

Each script runs in its own process with PYTHONPATH set to the build's
python directory ($STALL_BUILD/python, default <repo>/build/python), in a
fresh temporary directory so the files examples write (reports,
profile_output_dir, my_profile.pt, performance_report.json) land there.

A script passes when it exits 0 and prints something. Scripts that use a
feature of a later step of stall are listed in PENDING with the issue(s)
they wait for: they pass either when they run to completion or when they
stop at a NotImplementedError whose message names one of those issues.
When an issue lands, remove its scripts from PENDING: from then on they
must run to completion.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "seeds").glob("*.py"))
TIMEOUT_S = 120

# script name -> the issues it waits for (monitoring: issue 9)
PENDING = {}


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.environ.get("STALL_BUILD", str(REPO / "build")) + "/python"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _final_exception_line(stderr):
    """The last line of a traceback: 'SomeError: message'."""
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def test_every_pending_script_exists():
    names = {p.name for p in EXAMPLES}
    assert EXAMPLES, "no examples found in examples/seeds/"
    missing = sorted(set(PENDING) - names)
    assert not missing, f"PENDING names scripts that do not exist: {missing}"


@pytest.mark.skipif(not _has_torch(), reason="the seed examples need PyTorch, not installed for this interpreter "
                                             "(use /usr/bin/python3 on Debian)")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example(path, tmp_path):
    try:
        proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{path.name} ran longer than {TIMEOUT_S} s\n--- stdout\n{e.stdout}\n--- stderr\n{e.stderr}")
    report = f"{path.name} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    if proc.returncode == 0:
        assert proc.stdout.strip() or proc.stderr.strip(), f"{path.name} printed nothing\n{report}"
        return
    issues = PENDING.get(path.name)
    assert issues is not None, report
    last = _final_exception_line(proc.stderr)
    assert "Traceback (most recent call last)" in proc.stderr, report
    assert last.startswith("NotImplementedError"), f"expected a NotImplementedError naming one of {issues}\n{report}"
    assert any(i in last for i in issues), f"expected a NotImplementedError naming one of {issues}\n{report}"
