"""Submit pretraining / evaluation jobs to SLURM (or run them locally) through submitit.

Examples::

    # one pretraining job; resources from configs/slurm/gpu_example.yaml, two nodes
    python -m launchers.slurm pretrain --config configs/pretrain/demo_fmnist.yaml \\
        --slurm configs/slurm/gpu_example.yaml slurm.nodes=2 slurm.partition=gpu run.output_dir=runs/a
    # print the sbatch script only
    python -m launchers.slurm pretrain --config ... --dry-run
    # pretrain -> k-NN -> linear probe, chained with afterok dependencies
    python -m launchers.slurm pretrain --config ... --then knn:configs/downstream/knn.yaml --then linear \\
        then.knn.train_data.root=/data/imagenet then.knn.test_data.root=/data/imagenet
    # sweep: a job array, one output folder per combination
    python -m launchers.slurm pretrain --config ... --grid mask.strategy=random,attmask_high --grid run.seed=0,1
    # the same without SLURM
    python -m launchers.slurm pretrain --config ... --cluster local

``key=value`` arguments configure the job; ``slurm.key=value`` ones the resources
(:class:`launchers.executor.SlurmConfig`); ``then.knn.key=value`` a chained evaluation.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from submitit.core.utils import FailedJobError

from launchers.executor import SlurmConfig, eval_config, make_executor, sbatch_script
from launchers.jobs import Job, load_entry_point, resolve_entry_point
from launchers.sweep import expand_grid, run_name
from pretrain.configuration import ConfigError, load_config

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SLURM_CONFIG = REPO / "configs" / "slurm" / "default.yaml"


@dataclass
class Submission:
    """One submitted job (or one run of an array) and where it writes."""

    task: str
    output_dir: Path
    log_folder: Path
    job: Any = None  # the submitit Job (None on --dry-run)
    script: str = ""  # the sbatch script (slurm only)
    after: list[Submission] = field(default_factory=list)  # jobs chained after this one

    @property
    def job_id(self) -> str:
        return str(self.job.job_id) if self.job is not None else "DRY_RUN"

    def result(self) -> Any:
        """Waits for the job and returns rank 0's result (raises if the job failed)."""
        return self.job.results()[0]

    def describe(self) -> str:
        logs = self.job.paths.stdout if self.job is not None else self.log_folder / "<job id>_0_log.out"
        return (f"{self.task:<9} job {self.job_id:<12} output {self.output_dir}\n"
                f"{'':<9} logs {logs} (+ .err; one file per task)")


def split_overrides(items: Sequence[str]) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Sorts ``key=value`` items: ``slurm.*`` (resources), ``then.<task>.*`` (a chained
    evaluation, e.g. ``then.knn.train_data.root=/data``) and the job's own."""
    slurm: list[str] = []
    job: list[str] = []
    evals: dict[str, list[str]] = {}
    for item in items:
        if item.startswith("slurm."):
            slurm.append(item[len("slurm."):])
        elif item.startswith("then."):
            task, _, rest = item[len("then."):].partition(".")
            if not rest:
                raise ConfigError(f"{item!r}: write then.<task>.<key>=value, e.g. then.knn.train_data.root=/data")
            evals.setdefault(task, []).append(rest)
        else:
            job.append(item)
    return slurm, job, evals


def output_dir_of(cfg: Any, task: str) -> Path:
    """Where a job writes: ``run.output_dir`` (pretraining), else the folder of ``output``."""
    for key in ("run.output_dir", "output_dir"):
        value = OmegaConf.select(cfg, key)
        if value:
            return Path(value).resolve()
    value = OmegaConf.select(cfg, "output")
    if value:
        return Path(value).resolve().parent
    return (Path("runs") / task).resolve()


def _output_override(cfg: Any, path: Path) -> str:
    key = "run.output_dir" if OmegaConf.select(cfg, "run.output_dir") is not None else "output_dir"
    return f"{key}={path}"


def _eval_overrides(task: str, run_dir: Path) -> list[str]:
    suffix = ".npz" if task == "features" else ".json"  # features writes arrays, evaluators metrics
    name = task.rsplit(".", 1)[-1] + suffix
    return [f"checkpoint={run_dir / 'checkpoint.pt'}", f"output={run_dir / 'eval' / name}"]


def _parse_then(items: Sequence[str]) -> list[tuple[str, str | None]]:
    chain = []
    for item in items:
        task, _, config = item.partition(":")
        resolve_entry_point(task)
        chain.append((task, config or None))
    return chain


def _job(module: str, config: str | None, overrides: Sequence[str], output_dir: Path, slurm_cfg: SlurmConfig) -> Job:
    # half the signal delay to write the checkpoint, the other half for the requeue itself
    return Job(module, config, overrides, str(output_dir), slurm_cfg.max_requeues, slurm_cfg.signal_delay_s / 2)


def _submit_one(job: Job, slurm_cfg: SlurmConfig, folder: Path, dependency: str | None,
                dry_run: bool) -> tuple[Any, str]:
    script = sbatch_script(slurm_cfg, folder, dependency) if slurm_cfg.cluster == "slurm" else ""
    if dry_run:
        return None, script
    executor = make_executor(slurm_cfg, folder, dependency)
    submitted = executor.submit(job)
    if slurm_cfg.cluster != "slurm":
        submitted.results()  # no scheduler to chain on: run jobs one after the other
    return submitted, script


def _submit_array(jobs: list[Job], slurm_cfg: SlurmConfig, folder: Path, dry_run: bool) -> tuple[list[Any], str]:
    if slurm_cfg.cluster != "slurm":
        return [_submit_one(j, slurm_cfg, folder, None, dry_run)[0] for j in jobs], ""
    script = sbatch_script(slurm_cfg, folder, array_size=len(jobs))
    if dry_run:
        return [None] * len(jobs), script
    executor = make_executor(slurm_cfg, folder)
    with executor.batch():
        submitted = [executor.submit(j) for j in jobs]
    return submitted, script


def submit(task: str, config: str | None, overrides: Sequence[str], slurm_cfg: SlurmConfig,
           grid: Sequence[str] = (), then: Sequence[str] = (), dry_run: bool = False,
           then_overrides: dict[str, list[str]] | None = None) -> list[Submission]:
    """Submits ``task`` (one job, or an array over ``grid``) and its chained evaluations.

    Args:
        task: "pretrain", "knn", "linear", "features" or a module path exposing CONFIG and run.
        config: The job's YAML config.
        overrides: The job's ``key=value`` overrides.
        slurm_cfg: Resources and cluster.
        grid: ``key=v1,v2`` sweep axes; the cartesian product runs as one job array, each
            combination in ``<output_dir>/<run name>``.
        then: Evaluations chained after each run, ``"knn"`` or ``"knn:CONFIG"``; each waits for
            the previous job of its chain (``afterok``) and reads ``<run dir>/checkpoint.pt``.
        dry_run: Build everything, submit nothing (scripts are in the returned submissions).
        then_overrides: Extra ``key=value`` per chained task name, e.g. ``{"knn": ["ks=[20]"]}``.

    Returns:
        One Submission per run, with its chained evaluations in ``.after``.

    Raises:
        ConfigError: A bad key in any config, checked here before anything is queued.
    """
    module = resolve_entry_point(task)
    schema = load_entry_point(module).CONFIG
    base_cfg = load_config(schema, config, overrides)  # fail here, not in the queue
    base_dir = output_dir_of(base_cfg, task)
    chain = _parse_then(then)
    then_overrides = then_overrides or {}
    unused = set(then_overrides) - {t for t, _ in chain}
    if unused:
        raise ConfigError(f"then.{min(unused)}.* overrides given but no --then {min(unused)}")
    combos = expand_grid(grid)
    runs = []
    for combo in combos:
        run_overrides = list(overrides) + combo
        run_dir = base_dir / run_name(combo) if grid else base_dir
        if grid:
            run_overrides.append(_output_override(base_cfg, run_dir))
        load_config(schema, config, run_overrides)
        runs.append((run_dir, _job(module, config, run_overrides, run_dir, slurm_cfg)))
    for run_dir, _ in runs:  # every chained job of every run, before anything is printed or queued
        _check_chain(chain, then_overrides, run_dir)
    folder = Path(slurm_cfg.folder).resolve() if slurm_cfg.folder else base_dir / "slurm"
    if len(runs) == 1:
        job, script = _submit_one(runs[0][1], slurm_cfg, folder, None, dry_run)
        jobs, scripts = [job], [script]
    else:
        jobs, script = _submit_array([j for _, j in runs], slurm_cfg, folder, dry_run)
        scripts = [script] * len(jobs)
    out = [Submission(task, run_dir, folder, job, script) for (run_dir, _), job, script in zip(runs, jobs, scripts)]
    for sub in out:
        _submit_chain(sub, chain, then_overrides, slurm_cfg, dry_run)
    return out


def _check_chain(chain: Sequence[tuple[str, str | None]], then_overrides: dict[str, list[str]],
                 run_dir: Path) -> None:
    """Loads the config of every chained job of the run in ``run_dir`` (keys, types, values, cross-field rules).

    Raises:
        ConfigError: The first chained job whose config is wrong.
    """
    for task, config in chain:
        overrides = _eval_overrides(task, run_dir) + list(then_overrides.get(task, []))
        load_config(load_entry_point(resolve_entry_point(task)).CONFIG, config, overrides)


def _submit_chain(first: Submission, chain: Sequence[tuple[str, str | None]],
                  then_overrides: dict[str, list[str]], slurm_cfg: SlurmConfig, dry_run: bool) -> None:
    previous = first
    for task, config in chain:
        resources = replace(eval_config(slurm_cfg), job_name=f"{slurm_cfg.job_name}-{task.rsplit('.', 1)[-1]}")
        module = resolve_entry_point(task)
        overrides = _eval_overrides(task, first.output_dir) + list(then_overrides.get(task, []))
        load_config(load_entry_point(module).CONFIG, config, overrides)
        dependency = f"afterok:{previous.job_id}" if slurm_cfg.cluster == "slurm" else None
        folder = first.log_folder
        job, script = _submit_one(_job(module, config, overrides, first.output_dir / "eval", slurm_cfg),
                                  resources, folder, dependency, dry_run)
        sub = Submission(task, first.output_dir / "eval", folder, job, script)
        first.after.append(sub)
        previous = sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m launchers.slurm", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Docs: docs/slurm.md.",
    )
    parser.add_argument("task", help="pretrain | knn | linear | features | a module path with CONFIG and run()")
    parser.add_argument("--config", help="the job's YAML config (configs/pretrain/..., configs/downstream/...)")
    parser.add_argument("--slurm", default=str(DEFAULT_SLURM_CONFIG), help="resources YAML (configs/slurm/...)")
    parser.add_argument("--cluster", choices=["slurm", "local", "debug"], help="overrides slurm.cluster")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="sweep axis (repeatable): one array job over the cartesian product")
    parser.add_argument("--then", action="append", default=[], metavar="TASK[:CONFIG]",
                        help="evaluation chained after each run (repeatable, in order; afterok)")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script(s), submit nothing")
    parser.add_argument("overrides", nargs="*",
                        help="key=value (job), slurm.key=value (resources), then.TASK.key=value (chained job)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (console script ``attmask-slurm``)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)  # options and key=value in any order
    try:
        slurm_overrides, job_overrides, eval_overrides = split_overrides(args.overrides)
        # the default file is optional (an installed package may lack configs/)
        slurm_file = None if args.slurm == str(DEFAULT_SLURM_CONFIG) and not DEFAULT_SLURM_CONFIG.is_file() else args.slurm
        slurm_cfg = load_config(SlurmConfig, slurm_file, slurm_overrides)
        slurm_cfg = replace(OmegaConf.to_object(slurm_cfg), cluster=args.cluster or slurm_cfg.cluster)
        subs = submit(args.task, args.config, job_overrides, slurm_cfg, args.grid, args.then, args.dry_run,
                      eval_overrides)
    except ConfigError as exc:  # a job's or a chained job's config: nothing was printed or queued
        parser.exit(2, f"config error: {exc}\n")
    except (ValueError, TypeError, ImportError) as exc:
        parser.exit(2, f"error: {exc}\n")
    except FailedJobError as exc:  # --cluster local/debug: the job ran here and failed
        parser.exit(1, f"job failed: {exc}\n")
    _report(subs, slurm_cfg, args.dry_run)
    return 0


def _report(subs: list[Submission], slurm_cfg: SlurmConfig, dry_run: bool) -> None:
    if dry_run:
        shown = set()
        for sub in subs[:1] + [a for s in subs[:1] for a in s.after]:
            if sub.script and sub.script not in shown:
                shown.add(sub.script)
                print(f"# ---- sbatch script: {sub.task} (output {sub.output_dir})\n{sub.script}")
        if slurm_cfg.cluster != "slurm":
            print(f"# cluster={slurm_cfg.cluster}: no sbatch script; would run {len(subs)} run(s) locally")
        return
    for sub in subs:
        print(sub.describe())
        for after in sub.after:
            print("  then " + after.describe().replace("\n", "\n  "))
    if slurm_cfg.cluster == "slurm":
        print("watch: squeue --me; sacct -j <job id>; tail -f <logs>. Checkpoints: <output>/checkpoints/")


if __name__ == "__main__":
    sys.exit(main())
