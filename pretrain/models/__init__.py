"""ViT backbones, heads and weight loading for self-supervised pretraining.

``create_model("vit_small", ...)`` builds a backbone by name; see :mod:`pretrain.models.vit`.
"""

from pretrain.models.heads import DINOHead, iBOTHead
from pretrain.models.pretrained import from_pretrained, save_pretrained
from pretrain.models.registry import create_model, is_model, list_models, register_model
from pretrain.models.vit import VisionTransformer
from pretrain.models.vit_features import ViTFeatures
from pretrain.models import vit_sizes  # noqa: F401  (registers vit_pico ... vit_base)
from pretrain.models.weights import (
    CheckpointError,
    LoadReport,
    create_model_from_checkpoint,
    load_pretrained,
)
from pretrain.models.timm_export import export_to_timm, timm_kwargs

__all__ = [
    "CheckpointError",
    "DINOHead",
    "LoadReport",
    "ViTFeatures",
    "VisionTransformer",
    "create_model",
    "create_model_from_checkpoint",
    "export_to_timm",
    "from_pretrained",
    "iBOTHead",
    "is_model",
    "list_models",
    "load_pretrained",
    "register_model",
    "save_pretrained",
    "timm_kwargs",
]
