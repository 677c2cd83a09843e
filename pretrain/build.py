"""The one builder: turns a :class:`PretrainConfig` into the typed objects of a run.

This is the only place that reads the config for data, model, objective, masking, optimiser,
schedules and AMP; everything it builds takes plain arguments. :func:`build_run` returns the
:class:`pretrain.state.Run` the loop trains.
"""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pretrain.amp import grad_scaler, resolve_amp
from pretrain.config import PretrainConfig
from pretrain.configuration import ConfigError
from pretrain.data.batched_loader import BatchedMultiCropLoader
from pretrain.data.datasets import build_dataset
from pretrain.data.fashion_mnist import ensure_fashion_mnist, is_project_data_dir
from pretrain.data.loader import build_pretrain_loader
from pretrain.data.transforms import MultiCropSpec, MultiCropTransform
from pretrain.distributed import DistInfo
from pretrain.masking import build_masker
from pretrain.models import create_model
from pretrain.models.teacher_student import EMATeacher, MultiCropNetwork, build_multicrop_network
from pretrain.objective import build_objective
from pretrain.online_knn import KnnMonitor
from pretrain.optim import Schedules, build_optimizer, make_schedules, param_groups
from pretrain.state import Run
from pretrain.step import StudentCall

log = logging.getLogger(__name__)



def seed_everything(seed: int, deterministic: bool) -> None:
    """Seeds python, numpy and torch; optionally asks torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# ----------------------------------------------------------------------------- networks


def backbone_kwargs(cfg: PretrainConfig, drop_path: float) -> dict[str, Any]:
    """``create_model`` keyword arguments for the configured backbone."""
    m = cfg.model
    extra: list = []
    if m.key_variant != "standard" and cfg.data.n_local > 0:
        extra = [cfg.data.local_size]  # the token-mixing conv needs every token count up front
    sizes = {k: getattr(m, k) for k in ("embed_dim", "depth", "num_heads") if getattr(m, k) > 0}
    kwargs = dict(
        **sizes, patch_size=m.patch_size, img_size=cfg.data.global_size, pooling=m.pooling,
        pos_embed=m.pos_embed, key_variant=m.key_variant, num_charts=m.num_charts,
        num_registers=m.num_registers, drop_path_rate=drop_path, simpool_gamma=m.simpool_gamma,
        extra_img_sizes=extra, masked_im_modeling=cfg.loss.method == "ibot",
        attention=m.attention, pos_embed_interp=m.pos_embed_interp, simpool_beta=m.simpool_beta,
    )
    return kwargs


def build_network(cfg: PretrainConfig, student: bool) -> MultiCropNetwork:
    """Student (with drop path) or teacher (without) backbone plus heads."""
    drop = cfg.model.drop_path_rate if student else 0.0
    backbone = create_model(cfg.model.name, **backbone_kwargs(cfg, drop))
    h = cfg.head
    return build_multicrop_network(backbone, h.out_dim, h.patch_out_dim, hidden_dim=h.hidden_dim,
                                   bottleneck_dim=h.bottleneck_dim, nlayers=h.nlayers,
                                   norm_last_layer=h.norm_last_layer, shared_head=h.shared_head,
                                   with_patch=cfg.loss.method == "ibot",
                                   patch_head_layout=h.patch_head_layout)


def compile_backbone(backbone: nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` the method the multi-crop network runs, ``backbone.forward_features``.

    ``backbone.compile()`` would compile only ``forward``, which `MultiCropNetwork` never calls.
    Measured on the 2-core CPU (benchmarks/pretrain_step/results/compile_cpu.md): 1.02-1.03x steady state
    after about ten minutes of compiling, so ``run.compile`` stays off by default (GPU-only).
    """
    backbone.forward_features = torch.compile(backbone.forward_features, backend=backend)


def build_pretrain_loss(cfg: PretrainConfig) -> nn.Module:
    """The objective: ``iBOTLoss`` (keys ``cls.center``, ``patch.center``) or DINO's [CLS] loss."""
    lc = cfg.loss
    return build_objective(lc.method, cfg.head.out_dim, cfg.head.patch_out_dim, cfg.data.n_global,
                           cfg.data.n_local, lc.student_temp, lc.center_momentum, lc.lambda_cls,
                           lc.lambda_patch, lc.centering, lc.koleo_weight)


def build_masker_from(cfg: PretrainConfig):
    """The mask strategy, or None (DINO, or ``mask.strategy=none``)."""
    m = cfg.mask
    if cfg.loss.method != "ibot" or m.strategy == "none":
        return None
    return build_masker(m.strategy, prob=m.prob, ratio_range=(m.ratio_min, m.ratio_max), show_max=m.show_max)


def build_optimizer_from(cfg: PretrainConfig, student: nn.Module, total_batch: int) -> torch.optim.Optimizer:
    """AdamW with the linearly scaled learning rate (lr x total batch / 256)."""
    return build_optimizer(param_groups(student, cfg.optim.weight_decay), cfg.optim.lr * total_batch / 256.0)


def build_schedules(cfg: PretrainConfig, steps_per_epoch: int, total_batch: int) -> Schedules:
    o, lc = cfg.optim, cfg.loss
    return make_schedules(
        epochs=o.epochs, steps_per_epoch=steps_per_epoch, lr=o.lr * total_batch / 256.0, min_lr=o.min_lr,
        warmup_epochs=o.warmup_epochs, weight_decay=o.weight_decay, weight_decay_end=o.weight_decay_end,
        momentum_teacher=o.momentum_teacher, warmup_teacher_temp=lc.warmup_teacher_temp,
        teacher_temp=lc.teacher_temp, warmup_teacher_patch_temp=lc.warmup_teacher_patch_temp,
        teacher_patch_temp=lc.teacher_patch_temp, warmup_teacher_temp_epochs=lc.warmup_teacher_temp_epochs,
        mode=o.schedule)


# ----------------------------------------------------------------------------- data


def crop_spec(cfg: PretrainConfig) -> MultiCropSpec:
    d = cfg.data
    return MultiCropSpec(global_size=d.global_size, local_size=d.local_size, n_global=d.n_global,
                         n_local=d.n_local, global_scale=tuple(d.global_scale),
                         local_scale=tuple(d.local_scale), flip_p=d.flip_p, color_jitter=tuple(d.color_jitter),
                         jitter_p=d.jitter_p, gray_p=d.gray_p, blur_p=tuple(d.blur_p),
                         blur_sigma=tuple(d.blur_sigma), solarize_p=d.solarize_p)


def resolve_root(dataset: str, root: str) -> str:
    """Fashion-MNIST is found system-wide or in ``root``; fetched only when ``root`` is the project's own
    data folder (:func:`pretrain.data.fashion_mnist.is_project_data_dir`), else its missing files are named."""
    if dataset == "fashion_mnist":
        root = root or "data/fashion-mnist"
        return str(ensure_fashion_mnist(root, download=is_project_data_dir(root)))
    if not Path(root).is_dir():
        raise ConfigError(f"data root {root!r} does not exist: set data.root to an ImageFolder "
                          "directory (root/<class>/<image>)")
    return root


def build_pretrain_data(cfg: PretrainConfig, dist: DistInfo, device: torch.device,
                        ) -> tuple[Any, MultiCropSpec, KnnMonitor | None]:
    """The multi-crop loader for this rank, its crop spec, and the k-NN monitor (rank 0)."""
    d = cfg.data
    spec = crop_spec(cfg)
    key = f"data.ffcv_path={d.ffcv_path}" if d.loader == "ffcv" else f"data.root={d.root}"
    with data_errors(key):
        loader = _pretrain_loader(cfg, spec, dist, device)
    knn = None
    k = cfg.knn
    if k.every_epochs > 0 and dist.is_main:
        with data_errors(f"knn.root={k.root}"):
            knn = KnnMonitor(k.dataset, resolve_root(k.dataset, k.root), k.train_split, k.test_split,
                             k.max_train, k.max_test, k.image_size, k.k, k.temperature,
                             batch_size=256, num_workers=min(d.num_workers, 2),
                             mean=spec.mean, std=spec.std, features=tuple(k.features))
    return loader, spec, knn


@contextlib.contextmanager
def data_errors(key: str):
    """A missing, empty or broken data set (``FileNotFoundError``, ``ValueError`` naming the file) becomes a
    :class:`ConfigError` naming the config key too: one ``config error:`` line, before anything is written."""
    try:
        yield
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _pretrain_loader(cfg: PretrainConfig, spec: MultiCropSpec, dist: DistInfo, device: torch.device) -> Any:
    d = cfg.data
    if d.loader == "ffcv":
        from pretrain.data.ffcv.loader import build_ffcv_pretrain_loader

        loader = build_ffcv_pretrain_loader(d.ffcv_path, spec, batch_size=d.batch_size,
                                            num_workers=d.num_workers, seed=cfg.run.seed,
                                            rank=dist.rank, world_size=dist.world_size,
                                            device=device if d.colour_on_device else None,
                                            colour_on_device=d.colour_on_device)
    elif d.loader == "batched":
        ds = build_dataset(d.dataset, resolve_root(d.dataset, d.root), d.split)
        loader = BatchedMultiCropLoader(ds.images, ds.labels, spec, d.batch_size, cfg.run.seed,
                                        dist.rank, dist.world_size)
    else:
        root = resolve_root(d.dataset, d.root)
        split = d.split if d.dataset == "fashion_mnist" else None
        dataset = build_dataset(d.dataset, root, split)
        loader = build_pretrain_loader(dataset, MultiCropTransform(spec), d.batch_size,
                                       d.num_workers, cfg.run.seed, dist.rank, dist.world_size,
                                       pin_memory=cfg.run.device != "cpu")
    return loader


# ----------------------------------------------------------------------------- the run


def build_run(cfg: PretrainConfig, device: torch.device, dist: DistInfo) -> Run:
    """Data, networks, EMA teacher, objective, masking, optimiser, AMP and schedules of a run."""
    loader, spec, knn = build_pretrain_data(cfg, dist, device)
    if len(loader) == 0:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} x {dist.world_size} process(es) is larger "
                          "than the data set: no full batch per epoch; lower data.batch_size")
    student = build_network(cfg, student=True).to(device)
    teacher = build_network(cfg, student=False).to(device)
    ema = EMATeacher(student, teacher)
    loss = build_pretrain_loss(cfg).to(device)
    masker = build_masker_from(cfg)
    total_batch = cfg.data.batch_size * dist.world_size
    optimizer = build_optimizer_from(cfg, student, total_batch)
    amp = resolve_amp(cfg.run.amp, device)
    if cfg.run.compile:
        compile_backbone(student.backbone)
        compile_backbone(teacher.backbone)
    call: nn.Module = StudentCall(student)
    if dist.world_size > 1:
        call = nn.parallel.DistributedDataParallel(
            call, device_ids=[device.index] if device.type == "cuda" else None)
        # DDP has just broadcast rank 0's student; without this copy every other rank would keep a
        # teacher made from its own initialisation (and a resume, loading rank 0's, would differ)
        with torch.no_grad():
            torch._foreach_copy_(ema.teacher, ema.student)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed * 1000 + dist.rank)
    log.info("student: %.1fM parameters; %d steps/epoch",
             sum(p.numel() for p in student.parameters()) / 1e6, len(loader))
    return Run(cfg=cfg, device=device, dist=dist, output_dir=Path(cfg.run.output_dir), loader=loader,
               student=student, teacher=teacher, student_call=call, ema=ema, loss=loss, masker=masker,
               optimizer=optimizer, scaler=grad_scaler(device, amp),
               schedules=build_schedules(cfg, len(loader), total_batch), mask_generator=gen, amp=amp,
               mean=tuple(spec.mean), std=tuple(spec.std),
               model_spec={"name": cfg.model.name, "kwargs": backbone_kwargs(cfg, 0.0)},
               steps_per_epoch=len(loader), knn=knn, num_samples=num_samples(loader))


def num_samples(loader: Any) -> int | None:
    """How many training samples the loader draws its epochs from (all ranks together); None if unknown."""
    if hasattr(loader, "num_samples"):  # FFCV
        return int(loader.num_samples)
    if hasattr(loader, "labels"):  # the batched in-memory loader
        return len(loader.labels)
    if hasattr(loader, "dataset"):
        return len(loader.dataset)
    return None
