"""Taking a pretrained backbone out: safetensors folder + model card, timm state dict, ONNX.

``python -m pretrain.export --checkpoint CKPT --format safetensors|timm|onnx --output PATH``;
see :mod:`pretrain.export.cli` and docs/export.md.
"""

from pretrain.export.onnx_export import DEFAULT_OPSET, OnnxBackbone, OnnxReport, check_onnx, export_onnx
from pretrain.export.to_timm import export_timm, timm_name

__all__ = ["DEFAULT_OPSET", "OnnxBackbone", "OnnxReport", "check_onnx", "export_onnx", "export_timm", "timm_name"]
