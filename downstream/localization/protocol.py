"""Which published protocol a data format is evaluated with, and the settings that follow from it.

Two references define the numbers this evaluator reproduces, and they disagree on the details:

* wsolevaluation (Choe et al., CVPR 2020) for ``wsol`` / ``cub`` data (CUB, ImageNet,
  OpenImages): every image resized to S x S; MaxBoxAcc, MaxBoxAccV2, PxAP.
* LOST (Simeoni et al., BMVC 2021) for ``voc`` / ``coco`` data (VOC07, VOC12, COCO20k): every
  image at its own size, zero-padded to a multiple of the patch size; CorLoc; its DINO-seg
  baseline keeps the component LOST's ``dino_seg`` keeps.

A setting left at ``auto`` takes the value of the reference that owns the data format; a named
value overrides it (docs/localization.md, "Deviations from the references").
"""

from __future__ import annotations

__all__ = ["LOST_FORMATS", "reference_of", "resolve_component", "resolve_geometry"]

LOST_FORMATS = ("voc", "coco")


def reference_of(fmt: str) -> str:
    """``lost`` for the formats of LOST's benchmarks, else ``wsolevaluation``."""
    return "lost" if fmt in LOST_FORMATS else "wsolevaluation"


def resolve_geometry(setting: str, fmt: str) -> str:
    """``data.geometry``: ``square`` / ``pad`` as given; ``auto`` -> ``pad`` for LOST's formats, else ``square``."""
    if setting != "auto":
        return setting
    return "pad" if reference_of(fmt) == "lost" else "square"


def resolve_component(setting: str, fmt: str) -> str:
    """``component``: ``largest`` / ``lost`` as given; ``auto`` -> ``lost`` for LOST's formats, else ``largest``."""
    if setting != "auto":
        return setting
    return "lost" if reference_of(fmt) == "lost" else "largest"
