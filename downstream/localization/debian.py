"""The Debian packages the localization evaluator uses, fetched without root by `fetch_package`.

Used for the real-photo fixtures (``labelme-examples``: three PASCAL VOC 2011 photos with VOC XML
boxes, instance PNGs and a COCO JSON) and for background photos (``mate-backgrounds``).
"""

from __future__ import annotations

from pretrain.data.debian import fetch_package

__all__ = ["LABELME_EXAMPLES", "MATE_NATURE", "fetch_package"]

LABELME_EXAMPLES = ("labelme-examples", "usr/share/doc/labelme-examples/examples")
MATE_NATURE = ("mate-backgrounds", "usr/share/backgrounds/mate/nature")
