"""Fixtures for the launcher tests: a real one-node SLURM cluster for the session.

``slurm_cluster`` reuses a cluster that already answers (``$SLURM_CONF`` set and ``sinfo``
works), else runs ``launchers/local_slurm/up.sh`` when root with the SLURM packages installed
(and ``down.sh`` at the end of the session), else skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SCRIPTS = REPO / "launchers" / "local_slurm"
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "sacct", "slurmdbd", "mariadbd")


def _answers(env: dict) -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, check=False, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix", "alloc"))


def _job_environment() -> dict:
    """What jobs need to import the repo and the toy entry point from this folder."""
    path = [str(HERE), str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(path)}


@pytest.fixture(scope="session")
def slurm_cluster():
    """Yields the SLURM_CONF path of a running cluster; jobs inherit this process's env."""
    env = dict(os.environ)
    started = False
    default_conf = Path(os.environ.get("SLURM_DIR") or f"{os.environ.get('TMPDIR', '/tmp')}/attmask-slurm-{os.geteuid()}") / "slurm.conf"
    if not (env.get("SLURM_CONF") and _answers(env)) and default_conf.is_file() and _answers({**env, "SLURM_CONF": str(default_conf)}):
        env["SLURM_CONF"] = str(default_conf)  # up.sh's cluster is already running: reuse it, leave it up
    elif not (env.get("SLURM_CONF") and _answers(env)):
        missing = [b for b in NEEDED if shutil.which(b) is None]
        if missing:
            pytest.skip(f"SLURM not installed (missing {', '.join(missing)}): as root run "
                        "`apt-get install -y slurm-wlm munge slurmdbd mariadb-server` (make apt)")
        if os.geteuid() != 0:
            pytest.skip("starting a local SLURM cluster needs root (munged, slurmctld, slurmd); "
                        "or export SLURM_CONF of a running cluster")
        env.pop("SLURM_CONF", None)
        out = subprocess.run([str(SCRIPTS / "up.sh")], env=env, check=False, capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            pytest.fail(f"launchers/local_slurm/up.sh failed:\n{out.stdout}\n{out.stderr}")
        env["SLURM_CONF"] = out.stdout.strip().splitlines()[-1].split("=", 1)[1]
        started = True
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    os.environ.update({"SLURM_CONF": env["SLURM_CONF"], **_job_environment()})
    yield env["SLURM_CONF"]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if started:
        subprocess.run([str(SCRIPTS / "down.sh")], env=env, check=False, capture_output=True, timeout=120)


@pytest.fixture
def toy_on_path(monkeypatch):
    """Makes ``launcher_toy_entry`` importable here and in jobs (local executor, SLURM)."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", _job_environment()["PYTHONPATH"])
    yield "launcher_toy_entry"
    sys.modules.pop("launcher_toy_entry", None)
