"""The launcher without a SLURM cluster: CLI parsing, sbatch scripts (dry run), the job callable,
and the same jobs run by submitit's local executor (``--cluster local``) and in-process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from launchers import jobs
from launchers.interrupts import Interrupts
from launchers import slurm as cli
from launchers.executor import SlurmConfig, make_executor, sbatch_parameters, sbatch_script
from launchers.sweep import expand_grid, run_name
from pretrain.configuration import ConfigError

REPO = Path(__file__).resolve().parents[2]
SLURM_CONFIGS = sorted((REPO / "configs" / "slurm").glob("*.yaml"))


def _read_steps(out: Path) -> list[dict]:
    path = out / "steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_overrides_grid_and_run_names():
    assert cli.split_overrides(["slurm.nodes=2", "optim.lr=1e-3", "knn.k=5", "then.knn.ks=[20]"]) == (
        ["nodes=2"], ["optim.lr=1e-3", "knn.k=5"], {"knn": ["ks=[20]"]})
    grid = expand_grid(["mask.strategy=random,attmask_high", "run.seed=0,1"])
    assert len(grid) == 4 and grid[1] == ["mask.strategy=random", "run.seed=1"]
    assert run_name(grid[1]) == "strategy-random_seed-1"
    assert len({run_name(g) for g in grid}) == 4  # one folder per combination
    with pytest.raises(ConfigError, match="key=v1,v2"):
        expand_grid(["run.seed"])


@pytest.mark.parametrize("path", SLURM_CONFIGS, ids=lambda p: p.name)
def test_shipped_slurm_configs_load_and_make_scripts(path, tmp_path):
    cfg = cli.load_config(SlurmConfig, str(path))
    script = sbatch_script(cfg, tmp_path)
    assert "#SBATCH --requeue" in script and f"--signal=USR2@{cfg.signal_delay_s}" in script
    assert f"--ntasks-per-node={max(cfg.tasks_per_node, cfg.gpus_per_node, 1)}" in script


def test_dry_run_prints_the_sbatch_script_with_every_resource(toy_on_path, tmp_path, capsys):
    code = cli.main([
        toy_on_path, f"output_dir={tmp_path / 'run'}", "--dry-run", "--then", toy_on_path,
        "slurm.partition=gpu", "slurm.account=proj", "slurm.qos=high", "slurm.constraint=a100",
        "slurm.nodes=2", "slurm.gpus_per_node=4", "slurm.cpus_per_task=6", "slurm.mem_gb=64",
        "slurm.time_min=90", "slurm.exclusive=true", "slurm.job_name=mine",
        "slurm.sbatch_extra=[--mail-type=END]", f"slurm.folder={tmp_path / 'logs'}",
    ])
    out = capsys.readouterr().out
    assert code == 0
    for line in ["--partition=gpu", "--account=proj", "--qos=high", "--constraint=a100", "--nodes=2",
                 "--gpus-per-node=4", "--ntasks-per-node=4", "--cpus-per-task=6", "--mem=64GB",
                 "--time=90", "--exclusive", "--job-name=mine", "--mail-type=END",
                 f"--output={tmp_path / 'logs'}/%j_0_log.out"]:
        assert f"#SBATCH {line}" in out, line
    # the chained evaluation: one task, no GPU request beyond eval_gpus, afterok on the pretraining
    evaluation = out.split("# ---- sbatch script")[2]
    assert "#SBATCH --dependency=afterok:DRY_RUN" in evaluation and "#SBATCH --ntasks-per-node=1" in evaluation
    assert "#SBATCH --gpus-per-node=1" in evaluation and "#SBATCH --nodes=1" in evaluation
    assert not (tmp_path / "run").exists()  # nothing ran, nothing was written


def test_typos_are_reported_before_anything_is_queued(toy_on_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([toy_on_path, "slurm.partiton=gpu", "--dry-run"])
    assert exc.value.code == 2 and "partition" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([toy_on_path, "stpes=3", "--dry-run"])
    assert "'steps'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([toy_on_path, "--dry-run", "then.knn.ks=[1]"])  # no --then knn
    assert "no --then knn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["no_such_entry_point_module", "--dry-run"])
    assert "no module" in capsys.readouterr().err


def test_a_bad_choice_value_fails_before_submission(tmp_path, capsys):
    # issue 9: mask.strategy=atmask_high used to pass submission and fail inside the job
    with pytest.raises(SystemExit) as exc:
        cli.main(["pretrain", "--config", str(REPO / "configs/pretrain/demo_fmnist.yaml"),
                  f"run.output_dir={tmp_path / 'run'}", "mask.strategy=atmask_high", "--dry-run"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "mask.strategy='atmask_high'" in err and "attmask_high, none, random, block" in err
    assert not (tmp_path / "run").exists()


def test_job_refuses_to_run_past_its_requeue_limit(toy_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    job = jobs.Job(toy_on_path, None, [f"output_dir={tmp_path}"], str(tmp_path), max_requeues=2)
    with pytest.raises(jobs.RequeueLimitError, match="requeued 3 times.*max_requeues=2"):
        job()
    assert jobs.read_launches(tmp_path)[-1]["restart"] == 3
    resumed = job.checkpoint()  # what submitit requeues: the same job
    assert resumed.function.overrides == job.overrides and resumed.function.max_requeues == 2


def test_signals_ask_the_loop_for_a_checkpoint_and_forked_children_ignore_them():
    calls = []
    with Interrupts(lambda stop: calls.append(stop), rank=1, grace_s=60) as interrupts:
        pid = os.fork()
        if pid == 0:  # a DataLoader-worker-like child: the inherited handler must do nothing
            os.kill(os.getpid(), signal.SIGUSR2)
            os._exit(7 if calls else 0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert calls == []
        os.kill(os.getpid(), signal.SIGUSR2)
        assert calls == [True] and interrupts.received == "SIGUSR2"
    assert signal.getsignal(signal.SIGUSR2) is not interrupts._on_signal  # restored


@pytest.mark.slow
def test_local_cluster_runs_two_gloo_tasks_then_the_chained_evaluation(toy_on_path, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main([toy_on_path, "--cluster", "local", "--slurm", str(REPO / "configs/slurm/local_test.yaml"),
                     f"output_dir={out}", "steps=6", "ckpt_every=3", "step_s=0", "--then", toy_on_path,
                     f"then.{toy_on_path}.step_s=0.01"])
    printed = capsys.readouterr().out
    assert code == 0 and "logs" in printed
    steps = _read_steps(out)
    assert steps[0] == {"event": "start", "step": 0, "world": 2, "pid": steps[0]["pid"]}
    assert [s["step"] for s in steps if s["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    evaluation = json.loads((out / "eval" / f"{toy_on_path}.json").read_text())
    assert evaluation["evaluated_step"] == 6 and evaluation["time"] >= evaluation["checkpoint_time"]


@pytest.mark.slow
def test_local_cluster_signal_checkpoints_requeues_and_resumes(toy_on_path, tmp_path):
    # SIGUSR2 to every task, as SLURM (and submitit's local executor) send it before the time limit
    out = tmp_path / "run"
    cfg = SlurmConfig(cluster="local", tasks_per_node=2, cpus_per_task=1, time_min=10, max_num_timeout=3)
    job = make_executor(cfg, out / "slurm").submit(
        jobs.Job(toy_on_path, None, [f"output_dir={out}", "steps=40", "ckpt_every=1000", "step_s=0.1"], str(out)))
    deadline = time.time() + 120
    while not any(s["event"] == "step" and s["step"] >= 5 for s in _read_steps(out)):
        assert time.time() < deadline and not job.done(), "the local job never got to step 5"
        time.sleep(0.2)
    for pid_file in (out / "pids").iterdir():
        os.kill(int(pid_file.read_text()), signal.SIGUSR2)
    assert job.results()[0]["step"] == 40
    events = _read_steps(out)
    starts = [s["step"] for s in events if s["event"] == "start"]
    flushed = [s["step"] for s in events if s["event"] == "checkpoint_on_request"]
    assert len(starts) == 2 and len(flushed) == 1 and starts[1] == flushed[0] >= 5
    done = [s["step"] for s in events if s["event"] == "step"]
    assert done == list(range(1, 41))  # resumed exactly after the flushed step: nothing lost or repeated
    assert [r["restart"] for r in jobs.read_launches(out)] == [0, 0]  # local requeues are in place


def test_in_process_sweep_gives_each_combination_its_own_folder(toy_on_path, tmp_path):
    cfg = SlurmConfig(cluster="debug")
    subs = cli.submit(toy_on_path, None, [f"output_dir={tmp_path}", "step_s=0"], cfg,
                      grid=["steps=2,3", "ckpt_every=1,2"])
    assert sorted(s.output_dir.name for s in subs) == sorted(
        ["steps-2_ckpt_every-1", "steps-2_ckpt_every-2", "steps-3_ckpt_every-1", "steps-3_ckpt_every-2"])
    for sub in subs:
        steps = int(sub.output_dir.name.split("_")[0].split("-")[1])
        assert sub.result()["step"] == steps
        assert json.loads((sub.output_dir / "checkpoint.pt").read_text())["step"] == steps
    assert "requeue" in sbatch_parameters(cfg)["additional_parameters"]


def test_dry_run_of_a_sweep_is_one_job_array(toy_on_path, tmp_path, capsys):
    assert cli.main([toy_on_path, f"output_dir={tmp_path}", "--dry-run", "--grid", "steps=1,2,3",
                     "--grid", "step_s=0,0.1", "slurm.array_parallelism=4"]) == 0
    out = capsys.readouterr().out
    assert out.count("#!/bin/bash") == 1 and "#SBATCH --array=0-5%4" in out
    assert f"--output={tmp_path}/slurm/%A_%a_0_log.out" in out


@pytest.mark.parametrize("then, override, hint", [
    ("knn:configs/downstream/knn.yaml", "then.knn.backend=faiss_gpuu", "'faiss_gpu'"),
    ("localization", "then.localization.source=clss", "'cls'"),
    ("pose:configs/downstream/pose.yaml", "then.pose.head.pos_encoding=sin", "'sine'"),
    ("robustness", "then.robustness.masked_ratios=[2.0]", "[0, 1]"),
    ("finetune", "then.finetune.head.pool=clss", "'cls'"),
    ("segmentation", "then.segmentation.head.blocks=3", "blocks"),
])
def test_dry_run_checks_every_chained_job(then, override, hint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["pretrain", "--config", "configs/pretrain/demo_fmnist.yaml", f"run.output_dir={tmp_path}",
                  "--dry-run", "--then", then, override])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""  # nothing printed, nothing queued
    assert captured.err.startswith("config error: ") and hint in captured.err
    assert len(captured.err.strip().splitlines()) == 1
