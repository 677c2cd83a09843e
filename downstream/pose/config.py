"""Typed configuration of the pose evaluator, and the constructors that turn it into modules."""

from __future__ import annotations

from dataclasses import dataclass, field

from downstream.backbone import ModelSpec
from downstream.image_input import ImageInput
from downstream.pose.losses import LOSS_INIT, PoseLoss
from downstream.pose.model import PoseHead
from downstream.pose.transforms import PoseTransform, train_and_test_transforms
from downstream.settings import EvalSettings, check_float32_only
from pretrain.configuration import ConfigError, choice, register_check


@dataclass
class PoseDataSpec(ImageInput):
    root: str = ""  # folder the CSV's img_path entries are relative to
    train_csv: str = "poses.csv"  # relative to root (or absolute)
    test_csv: str = ""  # "" = train_csv
    train_split: str = "train"  # rows of the CSV's split column ("" = all rows)
    test_split: str = "test"
    # image_size (ImageInput's key): square input side, the crop (MS-Transformer 224)
    transform: str = choice("ms_transformer", "short_side_crop")  # see downstream/pose/transforms.py
    resize: int = 256  # ms_transformer: short side before the crop (MS-Transformer 256)
    augment: bool = True  # ms_transformer training: random crop + colour jitter (false = MS-T's no_augment)
    color_jitter: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5, 0.2])  # brightness, contrast, sat., hue
    equalize_scenes: bool = False  # MS-Transformer's equalize_scenes (Cambridge): oversample the smaller scenes
    num_workers: int = 0


@dataclass
class HeadSpec:
    """MS-Transformer defaults (7Scenes): width 256, 8 heads, FFN 256, 6/6 position and 4/4 orientation layers."""

    dim: int = 256
    heads: int = 8
    ffn: int = 256
    dropout: float = 0.1
    enc_layers_x: int = 6
    dec_layers_x: int = 6
    enc_layers_q: int = 4
    dec_layers_q: int = 4
    pos_encoding: str = choice("learned", "sine")  # learned (MS-Transformer) | sine (fixed DETR sine, Lee et al. 2024)
    pos_table: str = choice("shared", "per_branch")  # learned PE: one table for both branches (MS-T) | one each
    init: str = choice("ms_transformer", "xavier_all")  # initial weights, downstream/pose/initialization.py
    qka_weight: float = 0.0  # 0.1 = Lee et al.'s query-key alignment loss, per branch
    setting: str = choice("indoor", "outdoor")  # s_x, s_q init: indoor (0, -3) | outdoor (-3, -6.5)
    learn_loss_weights: bool = True


@dataclass
class PoseOptim:
    """MS-Transformer's 7Scenes recipe: Adam lr 1e-4, eps 1e-10, wd 1e-4, batch 8, 30 epochs, StepLR 10 x 0.1."""

    lr: float = 1e-4
    eps: float = 1e-10
    weight_decay: float = 1e-4
    batch_size: int = 8
    epochs: int = 30
    lr_step_epochs: int = 10
    gamma: float = 0.1
    backbone_lr: float = 1e-5  # finetune=true only


@dataclass
class PoseConfig(EvalSettings):
    """Pose regression on a pretrained backbone (train, then test).

    ``output`` default: <output_dir>/pose.json; ``tensorboard`` default: <output_dir>/tensorboard.
    """

    checkpoint: str = ""  # backbone weights (any checkpoint downstream.features loads)
    model: ModelSpec = field(default_factory=ModelSpec)
    data: PoseDataSpec = field(default_factory=PoseDataSpec)
    head: HeadSpec = field(default_factory=HeadSpec)
    optim: PoseOptim = field(default_factory=PoseOptim)
    finetune: bool = False  # train the backbone too
    cache_tokens: bool = True  # frozen backbone: compute its tokens once
    output_dir: str = ""  # default runs/pose
    seed: int = 0
    threads: int = 0  # torch CPU threads (0 = torch's default)
    log_every_steps: int = 20
    ckpt_every_epochs: int = 1
    keep_last: int = 2
    diag_frames: int = 64  # test frames for the attention diagnostics
    neighbours: int = 10  # n of the query-region purity
    pictures: bool = True


def check_pose_data(data: PoseDataSpec) -> None:
    """Input settings that cannot work: a crop larger than the resized image, a bad colour jitter."""
    if data.image_size < 1:
        raise ConfigError(f"data.image_size={data.image_size}: give the input side in pixels (224 published)")
    if data.transform == "ms_transformer" and data.resize < data.image_size:
        raise ConfigError(f"data.resize={data.resize} < data.image_size={data.image_size}: the crop must fit in the "
                          "resized image (MS-Transformer: resize 256, crop 224); or data.transform=short_side_crop")
    jitter = list(data.color_jitter)
    if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
        raise ConfigError(f"data.color_jitter={jitter}: give [brightness, contrast, saturation, hue], each >= 0, "
                          "hue <= 0.5 (MS-Transformer: [0.5, 0.5, 0.5, 0.2]; zeros = no jitter)")


def check_pose(cfg: PoseConfig) -> None:
    """Cross-field checks of the pose training config, run when it is parsed."""
    check_float32_only(cfg, "pose regression")
    check_pose_data(cfg.data)


register_check(PoseConfig, check_pose)


def build_head(spec: HeadSpec, num_scenes: int, in_dim: int, grid_hw: tuple[int, int]) -> PoseHead:
    return PoseHead(num_scenes, in_dim, grid_hw, spec.dim, spec.heads, spec.ffn, spec.dropout,
                    (spec.enc_layers_x, spec.dec_layers_x), (spec.enc_layers_q, spec.dec_layers_q), spec.pos_encoding,
                    spec.pos_table == "shared", spec.init)


def build_transforms(data: PoseDataSpec) -> tuple[PoseTransform, PoseTransform]:
    """(training, test) image transforms of the data settings."""
    return train_and_test_transforms(data.transform, data.image_size, data.resize, data.augment,
                                     tuple(data.color_jitter))


def build_pose_loss(spec: HeadSpec) -> PoseLoss:
    if spec.setting not in LOSS_INIT:
        raise ValueError(f"head.setting must be one of {', '.join(LOSS_INIT)}, got {spec.setting!r}")
    return PoseLoss(*LOSS_INIT[spec.setting], learnable=spec.learn_loss_weights)
