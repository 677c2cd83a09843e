"""Extract frozen-backbone features from a checkpoint on a labelled dataset, and save/load them.

Any checkpoint :func:`pretrain.models.load_pretrained` accepts works: our training checkpoints
(``<output_dir>/checkpoint.pt``; the architecture is read from the file), timm ViT state dicts and
DINO / iBOT / DINOv2 checkpoints (these carry no architecture: set ``model.name``,
``model.patch_size``, ...). Prefixes such as ``module.`` / ``backbone.`` are stripped and the
load report (missing / unexpected keys) is logged; a load that matches nothing is an error.

Feature kinds: see :mod:`pretrain.features` (``pooled``, ``cls``, ``avg``, ``cls_avg``, ``cls4``,
``cls4_avg``); the backbone: :mod:`downstream.backbone`.

Unreadable image files are skipped, not replaced: the rows and labels are exactly the readable
images, and the result reports ``skipped`` (their number; the paths are logged once each).

Usage::

    python -m downstream.features --checkpoint runs/x/checkpoint.pt data.dataset=fashion_mnist \
        data.root=/usr/share/datasets/fashion-mnist data.split=test --output test.npz
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from downstream.backbone import ModelSpec
from downstream.eval_cli import parse_with_aliases, save_beside
from downstream.eval_data import DataSpec
from downstream.features.extraction import extract_dataset
from downstream.features.files import save_features
from downstream.settings import EvalSettings
from pretrain.configuration import choice
from pretrain.features import KINDS

log = logging.getLogger(__name__)


@dataclass
class FeaturesConfig(EvalSettings):
    checkpoint: str = ""
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    kind: str = choice(*KINDS)  # see pretrain.features.KINDS


CONFIG = FeaturesConfig


def run(cfg: FeaturesConfig) -> dict:
    """Extract ``cfg.kind`` features of ``cfg.data`` and write them to ``cfg.output``.

    Returns:
        ``{"n": rows, "dim": D, "kind": kind, "skipped": unreadable files left out[, "output": path]}``.
    """
    # role "train" only sets the default split; data.split=test / val picks another one.
    feats, labels, skipped = extract_dataset(cfg.checkpoint, cfg.model, cfg.data, [cfg.kind], "train",
                                             cfg.device, cfg.amp, cfg.progress)
    result = {"n": int(labels.shape[0]), "dim": int(feats[cfg.kind].shape[1]), "kind": cfg.kind,
              "skipped": len(skipped)}
    if cfg.output:
        result["output"] = str(save_features(cfg.output, feats[cfg.kind], labels))
        save_beside(cfg, cfg.output)
    else:
        log.warning("no output= given: features were computed but not saved")
    return result


ALIASES = {"--checkpoint": "checkpoint", "--output": "output", "--kind": "kind", "--device": "device"}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.features --config FILE key=value ... [--checkpoint F --output F.npz]``.

    Returns None (a console script passes the return value to sys.exit).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(FeaturesConfig, argv, ALIASES, __doc__)
    result = run(cfg)
    print(result, file=sys.stdout)


if __name__ == "__main__":
    main()
