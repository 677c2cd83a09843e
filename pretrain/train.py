"""iBOT / DINO pretraining with attention-guided masking: the training loop.

Usage:
    python -m pretrain.train --config configs/pretrain/ibot_vits16_attmask_high.yaml key=value ...
    torchrun --nproc_per_node 8 -m pretrain.train --config ...

Restarting with the same ``run.output_dir`` resumes from the newest good checkpoint.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from pretrain.checkpoint import latest_good_checkpoint, save_step_checkpoint
from pretrain.config import PretrainConfig, parse_args, save_config
from pretrain.distributed import (DistInfo, barrier, max_over_ranks, cleanup, init_distributed,
                                  select_device)
from pretrain.monitor import RunMonitor, attention_picture
from pretrain.run_setup import TrainState, build_run, configure_logging, seed_everything
from pretrain.step import forward_losses, optimizer_step, to_device_crops

log = logging.getLogger("pretrain.train")
CONFIG = PretrainConfig
_CHECKPOINT_REQUEST = threading.Event()


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite steps."""


class Preempted(RuntimeError):
    """Raised after a requested checkpoint was written with ``stop=True``."""


_STOP_AFTER_CHECKPOINT = threading.Event()


def request_checkpoint(stop: bool = False) -> None:
    """Asks the loop to write a checkpoint at the next step boundary (signal-safe).

    With ``stop=True`` the loop then raises :class:`Preempted`, e.g. on a preemption
    signal, so a launcher can requeue the job knowing nothing since is lost.
    """
    if stop:
        _STOP_AFTER_CHECKPOINT.set()
    _CHECKPOINT_REQUEST.set()


def run(cfg: PretrainConfig) -> Dict[str, Any]:
    """Trains until ``optim.epochs`` (or ``run.max_steps``) and returns a summary dict."""
    device = select_device(cfg.run.device, int(__import__("os").environ.get("LOCAL_RANK", "0")))
    dist = init_distributed(device)
    out = Path(cfg.run.output_dir)
    configure_logging(out, dist.is_main)
    if dist.is_main:
        save_config(cfg, out / "config.yaml")
    seed_everything(cfg.run.seed + dist.rank, cfg.run.deterministic)
    r = build_run(cfg, device, dist)
    state = TrainState()
    found = latest_good_checkpoint(out)
    if found is not None:
        r.load_state(found[1], state)
        log.info("resumed from %s (step %d, epoch %d, batch %d)", found[0], state.step,
                 state.epoch, state.batch_in_epoch)
    monitor = RunMonitor(out / "tensorboard", dist.is_main, r.total_steps, state.step,
                         cfg.run.progress)
    try:
        _loop(cfg, r, state, monitor, dist, out)
    finally:
        monitor.close()
    summary = {"step": state.step, "epoch": state.epoch, "output_dir": str(out),
               "nonfinite_steps": int(state.skipped), "knn_top1": state.last_knn}
    if dist.is_main:
        r.save_final(out / "checkpoint.pt", state)
        log.info("done: %s", summary)
    barrier()
    cleanup()
    return summary


def _loop(cfg: PretrainConfig, r, state: TrainState, monitor: RunMonitor, dist: DistInfo,
          out: Path) -> None:
    max_steps = cfg.run.max_steps if cfg.run.max_steps > 0 else r.total_steps
    while state.epoch < cfg.optim.epochs and state.step < max_steps:
        r.loader.set_epoch(state.epoch, state.batch_in_epoch)
        with torch.random.fork_rng(devices=[]):  # creating the iterator must not move our RNG
            batches = iter(r.loader)
        for batch in batches:
            _train_step(cfg, r, state, monitor, batch)
            if state.step % cfg.run.log_every_steps == 0:
                _log(cfg, r, state, monitor)
            if _checkpoint_requested(r, state, cfg) or state.step % cfg.run.ckpt_every_steps == 0:
                _checkpoint(cfg, r, state, dist, out)
            if state.step >= max_steps:
                break
        if state.batch_in_epoch >= r.steps_per_epoch:  # the epoch ran to its end
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            _end_of_epoch(cfg, r, state, monitor, dist, out)
    _log(cfg, r, state, monitor)
    if state.last_ckpt_step != state.step:  # stopped by max_steps: keep the position too
        _checkpoint(cfg, r, state, dist, out)


def _checkpoint_requested(r, state: TrainState, cfg: PretrainConfig) -> bool:
    """Whether a signal asked for a checkpoint, agreed by all ranks so their collectives match.

    The ranks compare notes every step on CPU (cheap) and every ``log_every_steps`` on GPUs
    (a host sync), so a preemption costs at most that many steps of latency.
    """
    if r.world_size == 1:
        return _CHECKPOINT_REQUEST.is_set()
    if r.device.type == "cuda" and state.step % cfg.run.log_every_steps:
        return False
    # 0: nothing, 1: checkpoint, 2: checkpoint and stop - every rank acts on the maximum
    mine = (1 + _STOP_AFTER_CHECKPOINT.is_set()) if _CHECKPOINT_REQUEST.is_set() else 0
    agreed = max_over_ranks(mine, r.device)
    if agreed:
        _CHECKPOINT_REQUEST.set()
    if agreed == 2:
        _STOP_AFTER_CHECKPOINT.set()
    return agreed > 0


def _train_step(cfg: PretrainConfig, r, state: TrainState, monitor: RunMonitor, batch) -> None:
    sched = r.schedules.at(state.step)
    glob, loc = to_device_crops(batch, r.device, r.mean, r.std)
    res = forward_losses(r.student_call, r.teacher, r.losses, r.masker, glob, loc,
                         sched["teacher_temp"], cfg.loss.lambda_cls, cfg.loss.lambda_patch,
                         r.mask_generator, r.autocast())
    finite = optimizer_step(r.optimizer, r.scaler, res.loss, r.student, cfg.optim.clip_grad, sched,
                            state.step, cfg.optim.freeze_last_layer_epochs * r.steps_per_epoch)
    r.ema.update(sched["momentum"])
    state.track_finite(finite)
    state.step += 1
    state.batch_in_epoch += 1
    monitor.accumulate({"loss": res.loss.detach(), "loss_cls": res.loss_cls,
                        "loss_patch": res.loss_patch, "masked_fraction": res.masked_fraction,
                        "attn_entropy": res.attn_entropy}, glob.shape[0] // 2 * r.world_size)
    if cfg.run.image_every_steps > 0 and state.step % cfg.run.image_every_steps == 1:
        monitor.image("train/crops_attention_masks",
                      attention_picture(res.images, res.scores, res.masks, r.mean, r.std),
                      state.step)


def _check_finite(cfg: PretrainConfig, state: TrainState, out: Path) -> None:
    if state.max_consecutive_nonfinite() >= cfg.run.max_nonfinite_steps:
        raise NonFiniteLossError(
            f"{cfg.run.max_nonfinite_steps} consecutive steps had a non-finite loss or gradient "
            f"(by step {state.step}); they were skipped and the last good checkpoint in "
            f"{out / 'checkpoints'} is kept. Lower optim.lr, raise optim.warmup_epochs, use "
            "run.amp=bf16 instead of fp16, or check the data for broken images.")


def _log(cfg: PretrainConfig, r, state: TrainState, monitor: RunMonitor) -> None:
    _check_finite(cfg, state, Path(cfg.run.output_dir))
    sched = r.schedules.at(max(state.step - 1, 0))
    values = monitor.flush_scalars(state.step, {**sched, "nonfinite_steps": float(state.skipped)})
    if values:
        log.info("step %d/%d  loss %.4f  cls %.4f  patch %.4f  %.1f img/s", state.step,
                 r.total_steps, values["loss"], values["loss_cls"], values["loss_patch"],
                 values["img_per_s"])


def _checkpoint(cfg: PretrainConfig, r, state: TrainState, dist: DistInfo, out: Path) -> None:
    _check_finite(cfg, state, out)  # never write a checkpoint after a run of bad steps
    if dist.is_main:
        path = save_step_checkpoint(r.state_dict(state), out, cfg.run.keep_last)
        log.info("checkpoint %s", path)
    state.last_ckpt_step = state.step
    barrier()
    if _CHECKPOINT_REQUEST.is_set():
        _CHECKPOINT_REQUEST.clear()
        if _STOP_AFTER_CHECKPOINT.is_set():
            _STOP_AFTER_CHECKPOINT.clear()
            raise Preempted(f"checkpoint written at step {state.step}; stopping as requested")


def _end_of_epoch(cfg: PretrainConfig, r, state: TrainState, monitor: RunMonitor,
                  dist: DistInfo, out: Path) -> None:
    every = cfg.knn.every_epochs
    if every > 0 and state.epoch % every == 0:
        if dist.is_main:
            state.last_knn = r.knn.evaluate(r.teacher.backbone, r.device, r.autocast())
            monitor.scalar("knn/top1", state.last_knn, state.step)
            log.info("epoch %d: online k-NN top-1 %.2f%%", state.epoch, state.last_knn)
        barrier()
    _checkpoint(cfg, r, state, dist, out)


def main(argv: Optional[Sequence[str]] = None) -> None:
    cfg = parse_args(PretrainConfig, argv, description=__doc__.splitlines()[0])
    run(cfg)


if __name__ == "__main__":
    main()
