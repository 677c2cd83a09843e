"""The launcher against a real one-node SLURM cluster (launchers/local_slurm/up.sh).

2-task gloo jobs are interrupted the two ways a cluster does it - the time limit (SIGUSR2 from
``sbatch --signal``, then submitit's requeue) and ``scontrol requeue`` (SIGTERM, as for
preemption) - and must resume from their newest step checkpoint and finish, with the chained
evaluation (``afterok``) running after them.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from launchers import jobs
from launchers import slurm as cli
from launchers.executor import SlurmConfig

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _test_resources(**changes) -> SlurmConfig:
    cfg = cli.load_config(SlurmConfig, str(REPO / "configs" / "slurm" / "local_test.yaml"))
    return SlurmConfig(**{**OmegaConf.to_container(cfg), **changes})


def _state(job_id: str) -> tuple[str, str]:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], check=False, capture_output=True, text=True)
    if out.stdout.strip():
        state, reason = out.stdout.split(maxsplit=1)
        return state, reason.strip()
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], check=False, capture_output=True, text=True)
    return (out.stdout.split() or ["UNKNOWN"])[0], ""


def _wait(job_id: str, until, timeout_s: float, what: str) -> None:
    """Polls until ``until()``; a requeued job starts at once instead of after cred_expire."""
    deadline = time.time() + timeout_s
    ended = 0  # consecutive polls in an end state: a requeue passes through one for a moment
    held_since = None
    while not until():
        state, reason = _state(job_id)
        if state == "PENDING" and reason == "BeginTime":
            # Not at once: slurmd revokes the old run's credential with one-second resolution, and a
            # restart within the same second is killed ("Job credential revoked") and ends FAILED.
            held_since = held_since or time.time()
            if time.time() - held_since >= 3:
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=False, capture_output=True)
        else:
            held_since = None
        ended = ended + 1 if state in ("FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL") else 0
        if ended >= 5:
            pytest.fail(f"job {job_id} ended {state} while waiting for {what}; logs under its output folder")
        assert time.time() < deadline, f"timed out waiting for {what} (job {job_id}: {state} {reason})"
        time.sleep(1)


def _final_state(job_id: str, timeout_s: float = 60) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state, _ = _state(job_id)
        if state not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "UNKNOWN"):
            return state
        time.sleep(1)
    return state


def _events(out: Path) -> list[dict]:
    path = out / "steps.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _check_resumes(events: list[dict], ckpt_every: int, steps: int) -> list[int]:
    """Every restart resumed from the newest checkpoint (periodic, or flushed on the signal)."""
    starts, checkpointed, done, expected = [], 0, [], 1
    for e in events:
        if e["event"] == "start":
            assert e["step"] == checkpointed, f"restart at step {e['step']}, newest checkpoint {checkpointed}"
            starts.append(e["step"])
            expected = e["step"] + 1
        elif e["event"] == "step":
            assert e["step"] == expected  # each run continues from where it resumed, step by step
            expected += 1
            done.append(e["step"])
            checkpointed = e["step"] if e["step"] % ckpt_every == 0 else checkpointed
        elif e["event"] == "checkpoint_on_request":
            checkpointed = e["step"]
    assert done[-1] == steps and sorted(set(done)) == list(range(1, steps + 1))
    lost = len(done) - steps  # steps run twice because a checkpoint was missing
    assert lost <= (len(starts) - 1) * (ckpt_every - 1)
    return starts


def test_time_limit_checkpoints_requeues_resumes_and_then_evaluates(slurm_cluster, toy_on_path, tmp_path):
    # 1-minute limit, SIGUSR2 45 s before it: ~40 s of steps need at least one requeue
    out = tmp_path / "run"
    cfg = _test_resources(time_min=1, signal_delay_s=45, max_num_timeout=5)
    [sub] = cli.submit(toy_on_path, None, [f"output_dir={out}", "steps=160", "ckpt_every=20", "step_s=0.25"],
                       cfg, then=[toy_on_path])
    [evaluation] = sub.after
    result_file = out / "eval" / f"{toy_on_path}.json"
    _wait(sub.job_id, result_file.is_file, 420, "the pretraining and its chained evaluation")

    starts = _check_resumes(_events(out), ckpt_every=20, steps=160)
    assert len(starts) >= 2, "the time limit never interrupted the job"
    launches = [r["restart"] for r in jobs.read_launches(out)]  # a signal during start-up requeues before run()
    assert launches == list(range(len(launches))) and len(launches) >= len(starts)
    assert _final_state(sub.job_id) == "COMPLETED"
    assert _final_state(evaluation.job_id) == "COMPLETED"
    assert json.loads(result_file.read_text())["evaluated_step"] == 160  # afterok: ran on the final weights
    assert (out / "slurm" / f"{sub.job_id}_0_log.err").is_file()  # logs where the CLI said


def _knn_config(path: Path, fashion_mnist_root: Path) -> Path:
    """A small k-NN evaluation on Fashion-MNIST subsets (1000 train / 500 test images)."""
    data = {"dataset": "fashion_mnist", "root": str(fashion_mnist_root), "num_workers": 0, "batch_size": 250}
    path.write_text(json.dumps({  # JSON is YAML
        "train_data": {**data, "max_samples": 1000}, "test_data": {**data, "max_samples": 500},
        "fewshot": {"enabled": False}, "ks": [10, 20], "backend": "torch", "progress": False,
    }))
    return path


def test_pretraining_survives_scontrol_requeue_then_knn_runs(slurm_cluster, fashion_mnist_root, tmp_path):
    steps = 400
    out = tmp_path / "pretrain"
    overrides = [
        f"data.root={fashion_mnist_root}", f"knn.root={fashion_mnist_root}", "knn.every_epochs=0",
        # the per-image loader and 400 steps keep the job running long enough to be requeued (about
        # 50 s on an idle 2-core machine; 100 steps took 12 s there)
        "data.loader=torchvision", "data.batch_size=8", "data.num_workers=0", "data.n_local=2",
        f"run.output_dir={out}", f"run.max_steps={steps}", "run.ckpt_every_steps=2", "run.log_every_steps=1", "run.progress=false",
        "run.image_every_steps=0",
    ]
    cfg = _test_resources(time_min=15)
    [sub] = cli.submit("pretrain", str(REPO / "configs" / "pretrain" / "demo_fmnist.yaml"), overrides, cfg,
                       then=[f"knn:{_knn_config(tmp_path / 'knn.yaml', fashion_mnist_root)}"])
    # any step checkpoint: with keep_last=3 the step-2 file is rotated away a fraction of a second later
    _wait(sub.job_id, lambda: any((out / "checkpoints").glob("step_*.pt")), 420, "the first step checkpoint")
    subprocess.run(["scontrol", "requeue", sub.job_id], check=True)
    _wait(sub.job_id, (out / "checkpoint.pt").is_file, 600, "the requeued run to finish")

    log = (out / "train.log").read_text()
    resumed = [int(m) for m in re.findall(r"resumed from \S+ \(step (\d+)", log)]
    assert len(resumed) == 1 and resumed[0] >= 2, log  # the requeued job resumed from a step checkpoint
    before = log[: log.index("resumed from")]
    last_before = max(int(m) for m in re.findall(r"step (\d+)/\d+", before))
    assert last_before - resumed[0] < 2  # lost at most the steps since the newest checkpoint
    after = [int(m) for m in re.findall(r"step (\d+)/\d+", log[log.index("resumed from"):])]
    assert after and after[0] == resumed[0] + 1 and after[-1] == steps  # continued, not restarted
    assert [r["restart"] for r in jobs.read_launches(out)] == [0, 1]
    assert _final_state(sub.job_id) == "COMPLETED"
    [evaluation] = sub.after  # chained after the requeued job: still afterok on the same id
    assert _final_state(evaluation.job_id, timeout_s=300) == "COMPLETED"
    knn = json.loads((out / "eval" / "knn.json").read_text())
    assert 10.0 < knn["k=20"]["top1"] <= 100.0  # a real evaluation of the final weights (10 classes)


def test_sweep_is_a_job_array_with_one_folder_and_one_chained_evaluation_per_run(slurm_cluster, toy_on_path,
                                                                                 tmp_path):
    cfg = _test_resources(tasks_per_node=1)
    subs = cli.submit(toy_on_path, None, [f"output_dir={tmp_path}", "steps=3", "step_s=0"], cfg,
                      grid=["ckpt_every=1,2"], then=[toy_on_path])
    array_id = subs[0].job_id.split("_")[0]
    assert [s.job_id for s in subs] == [f"{array_id}_0", f"{array_id}_1"]
    results = [s.output_dir / "eval" / f"{toy_on_path}.json" for s in subs]
    _wait(subs[0].job_id, lambda: all(r.is_file() for r in results), 300, "both runs and their evaluations")
    for sub, result, every in zip(subs, results, (1, 2)):
        assert sub.output_dir == tmp_path / f"ckpt_every-{every}"
        ckpts = sorted(p.name for p in (sub.output_dir / "checkpoints").iterdir())
        assert ckpts == [f"step_{s:08d}.json" for s in range(every, 4, every)]  # its own overrides
        assert json.loads(result.read_text())["evaluated_step"] == 3
        assert _final_state(sub.after[0].job_id) == "COMPLETED"
