"""Pictures of what a backbone attends to and what each masking strategy would hide.

Usage::

    python -m downstream.attention --checkpoint runs/x/checkpoint.pt --images photos/ --output attention/
    python -m downstream.attention --checkpoint dino_deitsmall16_pretrain.pth model.name=vit_small \
        --images cat.jpg --output out/ ratio=0.5 image_size=320

For each image (any size and aspect ratio; the shorter side is resized to ``image_size`` and
both sides rounded to the patch size) ``<output>/<name>.png`` shows the last block's [CLS]
attention of every head (SimPool's map for SimPool models; registers excluded), DINO's
thresholded maps keeping ``mass`` (60%) of the attention, and the patches random, block and
AttMask-High / -Hint / -Low masking hide at ``ratio`` (the project's Masker, seed ``seed``);
``<output>/grid.png`` puts them together. Unreadable images are skipped and counted.
See docs/export.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from downstream.backbone import ModelSpec, build_backbone
from downstream.eval_cli import parse_with_aliases
from pretrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pretrain.export.clean_exit import run_cleanly

log = logging.getLogger(__name__)

__all__ = ["AttentionConfig", "main", "run"]


@dataclass
class AttentionConfig:
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)  # name=... for DINO / iBOT / timm files
    images: str = ""  # an image file or a folder of them
    output: str = ""  # folder for the PNGs
    image_size: int = 224  # shorter side, rounded to the patch size
    ratio: float = 0.4  # mask ratio of the hidden-patch panels
    seed: int = 0  # masking seed (same pictures every run)
    show_max: float = 0.1  # AttMask-Hint's hint pool
    mass: float = 0.6  # share of attention the thresholded maps keep (DINO: 0.6)
    block: int = -1  # block of the [CLS] maps
    grid: bool = True  # also <output>/grid.png
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    device: str = "auto"


def run(cfg: AttentionConfig) -> dict[str, Any]:
    """Write one PNG per readable image (and the grid); returns the files and the skip count.

    Raises:
        FileNotFoundError: missing checkpoint / images; ValueError: bad options or no readable image.
    """
    import torch

    from downstream.attention.figure import attention_figure, figure_grid, save_png
    from downstream.attention.image_maps import image_maps
    from downstream.attention.images import find_images, load_image
    from pretrain.distributed import select_device

    if not (cfg.images and cfg.output):
        raise ValueError("give --images FILE_OR_FOLDER and --output FOLDER (and --checkpoint FILE)")
    if not 0.0 < cfg.ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {cfg.ratio}")
    files = find_images(cfg.images)
    device = select_device(cfg.device)
    model = build_backbone(cfg.checkpoint, cfg.model).to(device)
    written, figures, skipped = [], [], []
    for path in files:
        loaded = load_image(path, cfg.image_size, model.patch_size, cfg.mean, cfg.std)
        if loaded is None:
            skipped.append(str(path))
            continue
        photo, x = loaded
        with torch.no_grad():
            maps = image_maps(model, photo, x.to(device), cfg.ratio, cfg.seed, cfg.show_max, cfg.mass, cfg.block)
        figures.append(attention_figure(maps, cfg.ratio, cfg.mass))
        written.append(str(save_png(figures[-1], Path(cfg.output) / f"{path.stem}.png")))
    if not figures:
        raise ValueError(f"no readable image among the {len(files)} file(s) of {cfg.images}")
    grid = str(save_png(figure_grid(figures), Path(cfg.output) / "grid.png")) if cfg.grid else ""
    return {"pictures": written, "grid": grid, "skipped": skipped, "heads": int(maps.maps.shape[0]),
            "source": maps.source}


ALIASES = {"--checkpoint": "checkpoint", "--images": "images", "--output": "output", "--which": "model.which",
           "--ratio": "ratio", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.attention --checkpoint F --images DIR --output DIR [key=value ...]``."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(AttentionConfig, argv, ALIASES, __doc__)
    res = run_cleanly(lambda: run(cfg))
    print(f"{len(res['pictures'])} pictures ({res['source']} maps, {res['heads']} per image) in {cfg.output}; "
          f"grid: {res['grid'] or 'none'}; skipped {len(res['skipped'])} unreadable image(s)")


if __name__ == "__main__":
    main()
