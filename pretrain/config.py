"""The pretraining config schema: typed sections with their defaults and the cross-field checks.

Defaults live in the dataclasses below; a YAML file in ``configs/pretrain/`` holds only the keys
it changes. Loading, overrides, choice checks and ``--help-config`` are the general machinery of
:mod:`pretrain.configuration`; :func:`check_pretrain` is registered there for
:class:`PretrainConfig`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from pretrain.configuration import ConfigError, choice, register_check


@dataclass
class ModelConfig:
    name: str = "vit_small"  # a registry name (pretrain.models.list_models())
    patch_size: int = 16
    embed_dim: int = 0  # 0: the registry entry's value (likewise depth, num_heads)
    depth: int = 0
    num_heads: int = 0
    pooling: str = choice("cls", "gap", "simpool")
    pos_embed: str = choice("learned", "sincos")
    key_variant: str = choice("standard", "spatialk", "kua", "simplek", "vanillak")
    num_charts: int = 4
    num_registers: int = 0
    drop_path_rate: float = 0.1
    simpool_gamma: float | None = None
    attention: str = choice("auto", "fused", "explicit")  # auto: the measured fastest path per call
    pos_embed_interp: str = choice("dino", "exact")  # dino: DINO/iBOT's (g + 0.1) / 14 resampling
    simpool_beta: str = choice("scalar", "channel")  # scalar: the reference SimPool's beta


@dataclass
class HeadConfig:
    out_dim: int = 8192
    patch_out_dim: int = 8192
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    nlayers: int = 3
    norm_last_layer: bool = True
    shared_head: bool = True  # iBOT: one head for [CLS] and patch tokens (needs patch_out_dim == out_dim)
    # ibot: one MLP, a second last layer when not shared (the reference); separate: a second full
    # head, the layout of our checkpoints before the parity fixes (to resume such runs)
    patch_head_layout: str = choice("ibot", "separate")


@dataclass
class LossConfig:
    method: str = choice("ibot", "dino")
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    warmup_teacher_patch_temp: float = 0.04  # iBOT's patch-loss teacher temperature (same warm-up)
    teacher_patch_temp: float = 0.07
    warmup_teacher_temp_epochs: int = 30
    center_momentum: float = 0.9
    lambda_cls: float = 1.0
    lambda_patch: float = 1.0
    # ema: DINO / iBOT centring; sinkhorn: DINOv2's Sinkhorn-Knopp teacher targets (3 iterations)
    centering: str = choice("ema", "sinkhorn")
    koleo_weight: float = 0.0  # > 0: DINOv2's KoLeo term on the student's pooled global vectors (0.1 there)


@dataclass
class MaskConfig:
    strategy: str = choice("attmask_high", "none", "random", "block", "attmask_hint", "attmask_low")
    prob: float = 0.5
    ratio_min: float = 0.1
    ratio_max: float = 0.5
    show_max: float = 0.1


@dataclass
class DataConfig:
    dataset: str = choice("imagefolder", "fashion_mnist")
    root: str = "data/imagenet/train"
    # fashion_mnist only: train_fit = the 50k training images outside the validation split train_holdout,
    # for choosing a recipe without its validation images (pair with knn.train_split / knn.test_split)
    split: str = choice("train", "train_fit")
    loader: str = choice("torchvision", "ffcv", "batched")
    ffcv_path: str = ""
    colour_on_device: bool = False  # FFCV only: colour jitter/grey/blur/solarize on the training device
    batch_size: int = 64  # per process
    num_workers: int = 8
    global_size: int = 224
    local_size: int = 96
    n_global: int = 2
    n_local: int = 10
    global_scale: list[float] = field(default_factory=lambda: [0.25, 1.0])
    local_scale: list[float] = field(default_factory=lambda: [0.05, 0.25])
    # photometric augmentation (defaults: DINO / iBOT's ImageNet recipe, see MultiCropSpec); blur_sigma is
    # in pixels of the crop, so small images want a smaller one (measured on Fashion-MNIST: configs/pretrain)
    flip_p: float = 0.5
    color_jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.2, 0.1])  # brightness contrast sat. hue
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: list[float] = field(default_factory=lambda: [1.0, 0.1, 0.5])  # global 1, global 2, local
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    solarize_p: float = 0.2


@dataclass
class OptimConfig:
    epochs: int = 100
    lr: float = 5e-4  # for a total batch of 256; scaled linearly
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    clip_grad: float = 3.0
    # per_param: DINO / iBOT / AttMask's clip_gradients (each parameter's gradient norm to clip_grad);
    # global: the norm of all gradients together (torch's clip_grad_norm_; keeps the update's direction)
    clip_mode: str = choice("per_param", "global")
    freeze_last_layer_epochs: int = 1
    # reference: DINO's cosine_scheduler and per-epoch teacher temperature;
    # exact: cosine ending exactly at the final value, teacher temperature per step
    schedule: str = choice("reference", "exact")


@dataclass
class KnnMonitorConfig:
    every_epochs: int = 0  # 0 disables the online k-NN check
    dataset: str = choice("fashion_mnist", "imagefolder")
    root: str = ""
    train_split: str = "train"
    test_split: str = "test"
    max_train: int = 10000
    max_test: int = 2000
    image_size: int = 224
    k: int = 20
    temperature: float = 0.07
    # readouts scored (pretrain.features kinds): pooled logs knn/top1, any other kind knn/top1_<kind>;
    # the first is the one train.log and the final summary report
    features: list[str] = field(default_factory=lambda: ["pooled"])


@dataclass
class RunConfig:
    output_dir: str = "runs/default"
    seed: int = 0
    device: str = choice("auto", "cpu", "cuda")
    amp: str = choice("auto", "bf16", "fp16", "none")  # auto: bf16 on CUDA, none on CPU
    compile: bool = False
    # which student outputs the iBOT step computes (pretrain.step.forward_losses): auto (exact on the
    # CPU, bound elsewhere), exact (the masked tokens), bound (a fixed count per crop), all (every token)
    patch_selection: str = choice("auto", "exact", "bound", "all")
    deterministic: bool = False
    max_steps: int = 0  # > 0 stops early (tests, demos); schedules still span all epochs
    ckpt_every_steps: int = 500
    keep_last: int = 3
    log_every_steps: int = 20
    image_every_steps: int = 500
    max_nonfinite_steps: int = 10
    progress: bool = True


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    knn: KnnMonitorConfig = field(default_factory=KnnMonitorConfig)
    run: RunConfig = field(default_factory=RunConfig)


def check_pretrain(cfg: PretrainConfig) -> None:
    """Cross-field checks of a pretraining config (run by :func:`load_config`)."""
    from pretrain.models import is_model, list_models  # the registry (lazy: configs load without torch set-up)

    d, m, h = cfg.data, cfg.model, cfg.head
    if not is_model(m.name):
        close = difflib.get_close_matches(m.name, list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ConfigError(f"model.name={m.name!r} is not a registered model: {hint}"
                          f"choose one of {', '.join(list_models())}")
    positive = {"data.batch_size": d.batch_size, "data.global_size": d.global_size,
                "data.n_global": d.n_global, "model.patch_size": m.patch_size, "optim.epochs": cfg.optim.epochs,
                "run.ckpt_every_steps": cfg.run.ckpt_every_steps, "run.log_every_steps": cfg.run.log_every_steps}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key}={value} must be > 0")
    if d.n_local < 0 or d.num_workers < 0:
        raise ConfigError("data.n_local and data.num_workers must be >= 0")
    if cfg.loss.method == "dino" and cfg.mask.strategy != "none":
        raise ConfigError("loss.method=dino has no masked-token loss: set mask.strategy=none "
                          "(or use loss.method=ibot)")
    sizes = [("data.global_size", d.global_size)] + ([("data.local_size", d.local_size)] if d.n_local else [])
    for name, size in sizes:
        if size % m.patch_size:
            raise ConfigError(f"{name}={size} is not a multiple of model.patch_size={m.patch_size}: "
                              "change one of them")
    if cfg.loss.method == "ibot" and h.shared_head and h.patch_out_dim != h.out_dim:
        raise ConfigError(f"head.shared_head=true needs head.patch_out_dim == head.out_dim (got "
                          f"{h.patch_out_dim} and {h.out_dim}): set head.shared_head=false or equal sizes")
    if h.patch_head_layout == "separate" and h.shared_head:
        raise ConfigError("head.patch_head_layout=separate (a second full patch head, for old runs) needs "
                          "head.shared_head=false")
    if d.loader == "ffcv" and not d.ffcv_path:
        raise ConfigError("data.loader=ffcv needs data.ffcv_path=<file.beton> (write one with attmask-write-beton)")
    if d.colour_on_device and d.loader != "ffcv":
        raise ConfigError("data.colour_on_device=true is the FFCV GPU colour path: use it with data.loader=ffcv")
    if d.loader == "batched" and d.dataset != "fashion_mnist":
        raise ConfigError("data.loader=batched keeps the whole data set in memory and supports "
                          f"data.dataset=fashion_mnist; use data.loader=torchvision or ffcv for {d.dataset!r}")
    if d.split != "train" and d.dataset != "fashion_mnist":
        raise ConfigError(f"data.split={d.split!r} is a Fashion-MNIST split: for data.dataset={d.dataset!r} point "
                          "data.root (or data.ffcv_path) at the images to pretrain on")
    if d.split != "train" and d.loader == "ffcv":
        raise ConfigError("data.split does not apply to data.loader=ffcv: write a .beton of the split you want")
    _check_augmentation(d)
    _check_knn_features(cfg)
    if not 0 <= cfg.mask.ratio_min <= cfg.mask.ratio_max <= 1:
        raise ConfigError(f"need 0 <= mask.ratio_min <= mask.ratio_max <= 1, got {cfg.mask.ratio_min}, "
                          f"{cfg.mask.ratio_max}")


def _check_augmentation(d: DataConfig) -> None:
    """Probabilities in [0, 1], ranges 0 < low <= high, list lengths: before any data is read."""
    lengths = {"global_scale": 2, "local_scale": 2, "color_jitter": 4, "blur_p": 3, "blur_sigma": 2}
    for name, n in lengths.items():
        if len(getattr(d, name)) != n:
            raise ConfigError(f"data.{name}={list(getattr(d, name))} needs {n} numbers")
    for name in ("global_scale", "local_scale", "blur_sigma"):
        low, high = getattr(d, name)
        if not 0 < low <= high:
            raise ConfigError(f"data.{name}={[low, high]} must satisfy 0 < low <= high")
    probabilities = {"flip_p": d.flip_p, "jitter_p": d.jitter_p, "gray_p": d.gray_p, "solarize_p": d.solarize_p,
                     **{f"blur_p[{i}]": p for i, p in enumerate(d.blur_p)}}
    for name, p in probabilities.items():
        if not 0 <= p <= 1:
            raise ConfigError(f"data.{name}={p} is a probability: give a value in [0, 1]")
    if min(d.color_jitter) < 0 or d.color_jitter[3] > 0.5:
        raise ConfigError(f"data.color_jitter={list(d.color_jitter)}: strengths must be >= 0 and hue <= 0.5")


def _check_knn_features(cfg: PretrainConfig) -> None:
    """knn.features: distinct feature kinds (pretrain.features.KINDS) this model can give, at least one."""
    from pretrain.features import KINDS

    features, k = list(cfg.knn.features), cfg.knn
    unknown = [f for f in features if f not in KINDS]
    if not features or unknown or len(set(features)) != len(features):
        raise ConfigError(f"knn.features={features} must be distinct feature kinds, at least one, from "
                          f"{', '.join(KINDS)}" + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else ""))
    if k.every_epochs <= 0:
        return
    cls_kinds = [f for f in features if f.startswith("cls")]
    if cls_kinds and cfg.model.pooling == "simpool":
        raise ConfigError(f"knn.features={features}: {', '.join(cls_kinds)} read a [CLS] token, which "
                          "model.pooling=simpool does not have: use pooled, avg or grid2")
    if "grid2" in features and k.image_size // cfg.model.patch_size < 2:
        raise ConfigError(f"knn.features grid2 needs a patch grid of at least 2x2: knn.image_size={k.image_size} "
                          f"with model.patch_size={cfg.model.patch_size} gives "
                          f"{k.image_size // cfg.model.patch_size}x{k.image_size // cfg.model.patch_size}")


register_check(PretrainConfig, check_pretrain)
