"""iBOT / DINO pretraining with attention-guided masking: the training loop.

Usage:
    python -m pretrain.train --config configs/pretrain/ibot_vits16_attmask_high.yaml key=value ...
    torchrun --nproc_per_node 8 -m pretrain.train --config ...
    python -m pretrain.train --help-config      # every config key, its default and valid values

Restarting with the same ``run.output_dir`` resumes from the newest good checkpoint.
SIGTERM or SIGUSR2 writes a checkpoint at the next step boundary and exits cleanly.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pretrain.build import build_run, seed_everything
from pretrain.checkpoint import latest_good_checkpoint, remove_stale_temporaries, save_step_checkpoint
from pretrain.config import PretrainConfig
from pretrain.configuration import parse_args, save_config
from pretrain.distributed import barrier, cleanup, init_distributed, select_device
from pretrain.preemption import REQUESTS, Preempted, request_checkpoint, run_resumable
from pretrain.resume import check_disk_space, check_resumable, check_same_data_size, check_writable
from pretrain.state import Run, TrainState, checkpoint_bytes, checkpoint_state, restore, save_final
from pretrain.loop_settings import LoopSettings, collapse_warning
from pretrain.metrics_file import MetricsFile
from pretrain.online_knn import knn_tag
from pretrain.step import StepModules, UpdateSettings, forward_losses, optimizer_step, to_device_crops
from pretrain.tensorboard import RunMonitor, attention_picture
from pretrain.train_log import open_train_log, start_logging

log = logging.getLogger("pretrain.train")
CONFIG = PretrainConfig
__all__ = ["CONFIG", "NonFiniteLossError", "Preempted", "main", "request_checkpoint", "run"]


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite steps."""


def run(cfg: PretrainConfig) -> dict[str, Any]:
    """Trains until ``optim.epochs`` (or ``run.max_steps``) and returns a summary dict.

    Raises:
        ConfigError: the output folder is not writable or lacks the space for the run's checkpoints, its
            checkpoints record another model or schedule (see :mod:`pretrain.resume`), or the data is
            missing or broken. Nothing is created in the output folder then.
        Preempted: a checkpoint was requested with ``stop=True`` and has been written.
    """
    device = select_device(cfg.run.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device)
    out = Path(cfg.run.output_dir)
    # Nothing is created in run.output_dir until the inputs are known to be good: the folder, its
    # model and schedule, the data, the disk space.
    if dist.is_main:
        check_writable(out)
    found = latest_good_checkpoint(out)
    changed = check_resumable(cfg, found[1], found[0]) if found is not None else {}
    start_logging(dist.is_main)
    seed_everything(cfg.run.seed + dist.rank, cfg.run.deterministic)
    r = build_run(cfg, device, dist)
    if found is not None:
        check_same_data_size(cfg, found[1], found[0], r.num_samples)
    if dist.is_main:
        remove_stale_temporaries(out)  # left by a kill during a checkpoint write
        check_disk_space(cfg, checkpoint_bytes(r))
    open_train_log(out, dist.is_main)
    if dist.is_main:
        save_config(cfg, out / "config.yaml")
    state = TrainState()
    if found is not None:
        restore(r, state, found[1])
        log.info("resumed from %s (step %d, epoch %d, batch %d)", found[0], state.step,
                 state.epoch, state.batch_in_epoch)
        for key, (before, now) in changed.items():
            log.info("resuming with %s changed: %r -> %r", key, before, now)
    monitor = RunMonitor(out / "tensorboard", dist.is_main, r.total_steps, state.step, cfg.run.progress,
                         MetricsFile(out, dist.is_main))
    try:
        _loop(r, state, monitor, loop_settings(cfg, r.steps_per_epoch))
    finally:
        monitor.close()
    summary = {"step": state.step, "epoch": state.epoch, "output_dir": str(out),
               "nonfinite_steps": int(state.skipped), "skipped_images": r.skipped_images,
               "knn_top1": state.last_knn}
    save_final(r, state, out / "checkpoint.pt")
    if dist.is_main:
        log.info("done: %s", summary)
    barrier()
    cleanup()
    return summary


def loop_settings(cfg: PretrainConfig, steps_per_epoch: int) -> LoopSettings:
    """The loop's typed settings from the config (the only place the loop's values are read from it)."""
    run_cfg, optim = cfg.run, cfg.optim
    return LoopSettings(
        epochs=optim.epochs, max_steps=run_cfg.max_steps, log_every_steps=run_cfg.log_every_steps,
        ckpt_every_steps=run_cfg.ckpt_every_steps, keep_last=run_cfg.keep_last,
        image_every_steps=run_cfg.image_every_steps, max_nonfinite_steps=run_cfg.max_nonfinite_steps,
        knn_every_epochs=cfg.knn.every_epochs, n_global=cfg.data.n_global, patch_selection=run_cfg.patch_selection,
        update=UpdateSettings(optim.clip_grad, optim.clip_mode, optim.freeze_last_layer_epochs * steps_per_epoch),
        uniform_loss=math.log(cfg.head.out_dim))


def _loop(r: Run, state: TrainState, monitor: RunMonitor, s: LoopSettings) -> None:
    max_steps = s.max_steps if s.max_steps > 0 else r.total_steps
    while state.epoch < s.epochs and state.step < max_steps:
        r.loader.set_epoch(state.epoch, state.batch_in_epoch)
        with torch.random.fork_rng(devices=[]):  # creating the iterator must not move our RNG
            batches = iter(r.loader)
        for batch in batches:
            _train_step(r, state, monitor, batch, s)
            if state.step % s.log_every_steps == 0:
                _log(r, state, monitor, s)
            requested = REQUESTS.poll(r.world_size, r.device, state.step, s.log_every_steps)
            if requested or state.step % s.ckpt_every_steps == 0:
                _checkpoint(r, state, s)
            if state.step >= max_steps:
                break
        if state.batch_in_epoch >= r.steps_per_epoch:  # the epoch ran to its end
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            _end_of_epoch(r, state, monitor, s)
    _log(r, state, monitor, s)
    if state.last_ckpt_step != state.step:  # stopped by max_steps: keep the position too
        _checkpoint(r, state, s)


def _train_step(r: Run, state: TrainState, monitor: RunMonitor, batch, s: LoopSettings) -> None:
    sched = r.schedules.at(state.step)
    glob, loc = to_device_crops(batch, r.device, r.mean, r.std)
    modules = StepModules(r.student_call, r.teacher, r.loss, r.masker, r.mask_generator)
    res = forward_losses(modules, glob, loc, sched["teacher_temp"], sched["teacher_patch_temp"], r.autocast(),
                         s.patch_selection)
    finite = optimizer_step(r.optimizer, r.scaler, r.student, res.loss, sched, state.step, s.update)
    r.ema.update(sched["momentum"])
    state.track_finite(finite)
    state.step += 1
    state.batch_in_epoch += 1
    monitor.accumulate({"loss": res.loss.detach(), "loss_cls": res.loss_cls,
                        "loss_patch": res.loss_patch, "loss_koleo": res.loss_koleo,
                        "masked_fraction": res.masked_fraction, "attn_entropy": res.attn_entropy},
                       glob.shape[0] // s.n_global * r.world_size)
    # the picture of the step just trained, at the same step number as that step's scalars
    if s.image_every_steps > 0 and state.step % s.image_every_steps == 0:
        monitor.image("train/crops_attention_masks",
                      attention_picture(res.images, res.scores, res.masks, r.mean, r.std), state.step)


def _check_finite(r: Run, state: TrainState, limit: int) -> None:
    if state.max_consecutive_nonfinite() >= limit:
        raise NonFiniteLossError(
            f"{limit} consecutive steps had a non-finite loss or gradient "
            f"(by step {state.step}); they were skipped and the last good checkpoint in "
            f"{r.output_dir / 'checkpoints'} is kept. Lower optim.lr, raise optim.warmup_epochs, use "
            "run.amp=bf16 instead of fp16, or check the data for broken images.")


def _log(r: Run, state: TrainState, monitor: RunMonitor, s: LoopSettings) -> None:
    _check_finite(r, state, s.max_nonfinite_steps)
    sched = r.schedules.at(max(state.step - 1, 0))
    values = monitor.flush_scalars(state.step, {**sched, "nonfinite_steps": float(state.skipped),
                                                "skipped_images": float(r.skipped_images)}, state.epoch)
    if values:
        log.info("step %d/%d  loss %.4f  cls %.4f  patch %.4f  %.1f img/s", state.step,
                 r.total_steps, values["loss"], values["loss_cls"], values["loss_patch"],
                 values["img_per_s"])
        warning = collapse_warning(values["loss_cls"], state.epoch, s.uniform_loss)
        if warning and "collapse" not in monitor.warned:  # once per run
            monitor.warned.add("collapse")
            log.warning("step %d: %s", state.step, warning)


def _checkpoint(r: Run, state: TrainState, s: LoopSettings) -> None:
    _check_finite(r, state, s.max_nonfinite_steps)  # never write a checkpoint after a run of bad steps
    payload = checkpoint_state(r, state)  # collective: every rank's RNG
    if r.dist.is_main:
        path = save_step_checkpoint(payload, r.output_dir, s.keep_last)
        log.info("checkpoint %s", path)
    state.last_ckpt_step = state.step
    barrier()
    REQUESTS.answered(state.step)  # raises Preempted after a stop request


def _end_of_epoch(r: Run, state: TrainState, monitor: RunMonitor, s: LoopSettings) -> None:
    every = s.knn_every_epochs
    if every > 0 and state.epoch % every == 0:
        if r.dist.is_main:
            scores = r.knn.evaluate(r.teacher.backbone, r.device, r.amp)
            for kind, top1 in scores.items():
                monitor.scalar(knn_tag(kind), top1, state.step, state.epoch)
            state.last_knn = next(iter(scores.values()))
            log.info("epoch %d: online k-NN top-1 %s", state.epoch,
                     ", ".join(f"{top1:.2f}% ({kind})" for kind, top1 in scores.items()))
        barrier()
    if state.last_ckpt_step != state.step:  # not twice when the epoch ends on a periodic one
        _checkpoint(r, state, s)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pretrain.train``: SIGTERM/SIGUSR2 checkpoint and stop; config errors are one line."""
    cfg = parse_args(PretrainConfig, argv, description=__doc__.splitlines()[0])
    run_resumable(run, cfg)


if __name__ == "__main__":
    main()
