"""Train an MS-Transformer-style pose head on a pretrained ViT, then test it.

Usage::

    python -m downstream.pose.train --checkpoint runs/x/checkpoint.pt data.root=DIR --output-dir runs/pose
    python -m downstream.pose.train --config configs/downstream/pose_cpu.yaml --checkpoint C data.root=DIR \
        head.pos_encoding=sine head.qka_weight=0.1

The frozen backbone's patch tokens are computed once and cached (``cache_tokens``);
``finetune=true`` trains the backbone too (images every step). Resumes from the newest
checkpoint under ``<output_dir>/checkpoints``. Writes ``pose_head.pt`` (for
:mod:`downstream.pose.test`), ``pose.json`` (+ ``pose.config.yaml``), TensorBoard events and,
with ``pictures=true``, PNGs. See docs/pose.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from downstream.eval_cli import parse_with_aliases
from downstream.backbone import build_backbone
from pretrain.distributed import select_device
from downstream.pose.checkpoints import latest_head_checkpoint, save_head_checkpoint
from downstream.pose.baseline import mean_pose_report, scene_mean_poses
from downstream.pose.config import PoseConfig, build_head, build_pose_loss, build_transforms
from downstream.pose.data import open_split
from downstream.pose.evaluation import evaluate, write_outputs
from downstream.pose.sampling import EqualizedSampler
from downstream.pose.tokens import cache_tokens, in_channels, patch_tokens
from downstream.results import tensorboard_dir
from pretrain.export.clean_exit import run_cleanly

log = logging.getLogger(__name__)

CONFIG = PoseConfig


def _inputs(batch, backbone, cfg: PoseConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(tokens, xyz, quat, scene) on the device, running the backbone unless tokens are cached."""
    first, xyz, quat, scene = batch
    if first.dtype == torch.uint8:  # images
        with torch.set_grad_enabled(cfg.finetune and torch.is_grad_enabled()):
            first = patch_tokens(backbone, first.to(device), cfg.data.mean, cfg.data.std)
    return first.to(device), xyz.to(device), quat.to(device), torch.as_tensor(scene).to(device)


def train_step(head, criterion, tokens, xyz, quat, scene, qka_weight: float) -> tuple[torch.Tensor, dict]:
    """The MS-Transformer loss (+ QKA): teacher-forced on the true scene."""
    out = head(tokens, scene)
    pose, parts = criterion(out.x, out.q, xyz, quat)
    nll = F.nll_loss(out.scene_logp, scene)
    qka = out.qka()
    loss = pose + nll + (qka_weight * (qka["position"] + qka["orientation"]) if qka_weight > 0 else 0.0)
    return loss, {**parts, "nll": nll.detach(), **{f"qka_{k}": v.detach() for k, v in qka.items()}}


def resume(out_dir: Path, head, criterion, opt, sched, backbone=None) -> int:
    """Load the newest good epoch checkpoint into the given objects; returns its epoch (0 = none)."""
    found = latest_head_checkpoint(out_dir)
    if found is None:
        return 0
    path, state = found
    head.load_state_dict(state["head"])
    criterion.load_state_dict(state["loss"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if backbone is not None and "backbone" in state:
        backbone.load_state_dict(state["backbone"])
    log.info("resumed from %s (epoch %d)", path, state["epoch"])
    return int(state["epoch"])


def _data(cfg: PoseConfig, backbone, device: torch.device) -> tuple:
    """(train set, test set, train source, test source).

    With a frozen backbone the sources are cached tokens where the transform is deterministic:
    always for the test set, for the training set only without random crops / colour jitter
    (``data.augment=false`` or ``data.transform=short_side_crop``); otherwise the backbone runs
    on the augmented images every step.
    """
    chans = in_channels(backbone)
    train_tf, test_tf = build_transforms(cfg.data)
    train_set = open_split(cfg.data.root, cfg.data.train_csv, cfg.data.train_split, cfg.data.image_size, chans,
                           transform=train_tf, seed=cfg.seed)
    test_set = open_split(cfg.data.root, cfg.data.test_csv or cfg.data.train_csv, cfg.data.test_split,
                          cfg.data.image_size, chans, names=train_set.names, transform=test_tf)
    if cfg.finetune or not cfg.cache_tokens:
        return train_set, test_set, train_set, test_set
    t0 = time.perf_counter()
    cache = [cache_tokens(backbone, ds, 64, device, cfg.data.mean, cfg.data.std, cfg.data.num_workers, cfg.progress,
                          f"{name} tokens") if not ds.transform.is_random else ds
             for name, ds in (("train", train_set), ("test", test_set))]
    if train_tf.is_random:
        log.info("training images are augmented (random crop + colour jitter): the frozen backbone runs every step; "
                 "data.augment=false or data.transform=short_side_crop caches its tokens once")
    log.info("backbone over the cached frames: %.1f s", time.perf_counter() - t0)
    return train_set, test_set, cache[0], cache[1]


def _loader(cfg: PoseConfig, train_set, train_src, gen: torch.Generator) -> DataLoader:
    """Shuffled batches, or MS-Transformer's scene-equalised epochs (``data.equalize_scenes``)."""
    images = train_src is train_set
    workers = cfg.data.num_workers if images else 0
    if cfg.data.equalize_scenes:
        return DataLoader(train_src, batch_size=cfg.optim.batch_size, sampler=EqualizedSampler(train_set.scene, gen),
                          drop_last=True, num_workers=workers)
    return DataLoader(train_src, batch_size=cfg.optim.batch_size, shuffle=True, generator=gen, drop_last=True,
                      num_workers=workers)


def _optimizer(cfg: PoseConfig, head, criterion, backbone) -> tuple:
    """(Adam over head + loss weights, and the backbone with finetune=true; its StepLR schedule)."""
    params = [{"params": list(head.parameters()) + list(criterion.parameters()), "lr": cfg.optim.lr}]
    if cfg.finetune:
        params.append({"params": list(backbone.parameters()), "lr": cfg.optim.backbone_lr})
    opt = torch.optim.Adam(params, eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
    return opt, torch.optim.lr_scheduler.StepLR(opt, cfg.optim.lr_step_epochs, cfg.optim.gamma)


def run(cfg: PoseConfig) -> dict:
    """Train (resuming if possible) and test; returns the test results (see :func:`downstream.pose.evaluation.evaluate`)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    out_dir = Path(cfg.output_dir or (Path(cfg.output).parent if cfg.output else "runs/pose"))
    backbone = build_backbone(cfg.checkpoint, cfg.model, cfg.data.image_size).to(device)
    if cfg.finetune:
        backbone.requires_grad_(True).train()
    train_set, test_set, train_src, test_src = _data(cfg, backbone, device)
    grid = backbone.grid_for((cfg.data.image_size, cfg.data.image_size))
    head = build_head(cfg.head, len(train_set.names), backbone.embed_dim, grid).to(device)
    criterion = build_pose_loss(cfg.head).to(device)
    opt, sched = _optimizer(cfg, head, criterion, backbone)
    start_epoch = resume(out_dir, head, criterion, opt, sched, backbone if cfg.finetune else None)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = _loader(cfg, train_set, train_src, gen)
    means = scene_mean_poses(train_set.table.xyz, train_set.table.quat, train_set.scene, len(train_set.names))
    tb_dir = tensorboard_dir(cfg.tensorboard, str(out_dir / "pose.json"))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tb_dir))
    step, frames, t_train = start_epoch * len(loader), 0, 0.0
    for epoch in range(start_epoch, cfg.optim.epochs):
        gen.manual_seed(cfg.seed * 1000 + epoch)  # the shuffle order depends on the epoch only: exact resume
        train_set.set_epoch(epoch)  # so do the random crops and colours
        head.train()
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"pose epoch {epoch + 1}/{cfg.optim.epochs}", disable=not cfg.progress, leave=False)
        for batch in bar:
            tokens, xyz, quat, scene = _inputs(batch, backbone, cfg, device)
            loss, parts = train_step(head, criterion, tokens, xyz, quat, scene, cfg.head.qka_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            frames += tokens.shape[0]
            if step % cfg.log_every_steps == 0:
                for k, v in {"loss": loss.detach(), **parts, "s_x": criterion.s_x.detach(),
                             "s_q": criterion.s_q.detach()}.items():
                    writer.add_scalar(f"pose_train/{k}", float(v), step)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        sched.step()
        t_train += time.perf_counter() - t0
        if (epoch + 1) % cfg.ckpt_every_epochs == 0 or epoch + 1 == cfg.optim.epochs:
            save_head_checkpoint(out_dir, epoch + 1, head, criterion, opt, sched, cfg, train_set.names, grid,
                                 backbone.embed_dim, backbone if cfg.finetune else None, means)
    writer.close()
    results, pred = evaluate(head, backbone, test_src, train_set.names, cfg.data.mean, cfg.data.std, device,
                             cfg.diag_frames, cfg.neighbours)
    results["train"] = {"epochs": cfg.optim.epochs, "resumed_from_epoch": start_epoch, "steps": step,
                        "frames_per_s": frames / t_train if t_train > 0 else None,
                        "s_x": criterion.s_x.item(), "s_q": criterion.s_q.item()}
    results["mean_pose_baseline"] = mean_pose_report(means, torch.from_numpy(test_set.table.xyz),
                                                     torch.from_numpy(test_set.table.quat),
                                                     torch.from_numpy(test_set.scene), train_set.names)
    write_outputs(results, pred, cfg.output or str(out_dir / "pose.json"), cfg.tensorboard, cfg.pictures, cfg, head,
                  test_src, test_set)
    return results


ALIASES = {"--checkpoint": "checkpoint", "--output-dir": "output_dir", "--output": "output", "--device": "device",
           "--seed": "seed"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.pose.train --checkpoint C data.root=DIR key=value ...``; prints the summary."""
    from downstream.pose.evaluation import format_results

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(PoseConfig, argv, ALIASES, __doc__)
    print(format_results(run_cleanly(lambda: run(cfg))))


if __name__ == "__main__":
    main()
