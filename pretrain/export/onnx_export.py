"""ONNX export of a backbone with dynamic batch size and image size, checked with onnxruntime.

The graph takes ``image`` (B, C, H, W) float32 (H, W any multiples of the patch size) and
returns ``pooled`` (B, D) (optionally ``attention`` (B, N): the last block's [CLS] -> patch
attention averaged over heads, or SimPool's map, as ``forward_features(x, return_attention="cls")``).

The model's own resampling of a learned position table calls ``F.interpolate`` with sizes read
as Python ints, which a trace freezes at the example size. The export therefore runs a copy of
the model whose position table is resampled by :func:`pretrain.export.bicubic.resample_grid`
(the same bicubic formula, with weight matrices built from the traced grid size) and whose
fixed sin-cos table is recomputed from the traced grid, so one graph serves every input size.
Both ``pos_embed_interp`` modes are kept: ``"dino"`` samples at the scale factor
(g + 0.1) / g0 and leaves the table as-is at the training grid, ``"exact"`` at g / g0.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pretrain.export.bicubic import resample_grid
from pretrain.models.pos_embed import sincos_2d
from pretrain.models.vit import VisionTransformer

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPSET", "OnnxBackbone", "OnnxReport", "check_onnx", "export_onnx"]

DEFAULT_OPSET = 17


class OnnxBackbone(nn.Module):
    """A traceable copy of a :class:`VisionTransformer` (the original is not modified).

    Args:
        model: the backbone (standard attention; any pooling, position embedding, registers).
        attention: also return the (B, N) [CLS] / SimPool attention map.

    Raises:
        ValueError: for a manifold-key model (its key mixes a fixed number of tokens, so one
            graph cannot take every image size).
    """

    def __init__(self, model: VisionTransformer, attention: bool = False) -> None:
        super().__init__()
        if model.key_variant != "standard":
            raise ValueError(f"cannot export key_variant={model.key_variant!r} to ONNX: a manifold key has weights "
                             "per token count, so no graph takes every image size; only key_variant='standard' "
                             "models export")
        self.model = copy.deepcopy(model).eval()
        self.model.set_attention("explicit")  # plain MatMul / Softmax; "auto" reads the device per call
        self.model.grid_for = self._grid_for  # traced sizes: no Python divisibility check
        self.model._pos_embed_for = self._pos_embed_for
        self.attention = attention

    def _grid_for(self, img_hw: tuple) -> tuple:
        p = self.model.patch_size
        return img_hw[0] // p, img_hw[1] // p

    def _pos_embed_for(self, grid: tuple, device: torch.device) -> torch.Tensor:
        m = self.model
        if m.pos_embed_type == "sincos":
            return sincos_2d(m.embed_dim, grid, m.num_cls, device=device)
        (h0, w0), (h, w) = m.grid_hw, grid
        if m.pos_embed_interp == "dino":  # DINO returns the table unchanged at its own grid: scale 1 is identity
            same = (h == h0) & (w == w0) if isinstance(h, torch.Tensor) else (h == h0 and w == w0)
            one = torch.ones((), dtype=torch.float32)
            sy = torch.where(torch.as_tensor(same), one, (h + 0.1) / h0)
            sx = torch.where(torch.as_tensor(same), one, (w + 0.1) / w0)
        else:
            sy, sx = h / h0, w / w0
        table = m.pos_embed[:, m.num_cls:].reshape(h0, w0, -1).permute(2, 0, 1).float()
        patches = resample_grid(table, (h, w), (sy, sx)).flatten(1).transpose(0, 1).unsqueeze(0)
        return torch.cat([m.pos_embed[:, :m.num_cls], patches.to(m.pos_embed.dtype)], dim=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> pooled (B, D) [, attention (B, N)]."""
        out = self.model.forward_features(image, return_attention="cls" if self.attention else None)
        return (out.pooled, out.attention) if self.attention else out.pooled


@dataclass
class OnnxReport:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the .onnx file.
        opset: ONNX opset version.
        max_abs_diff: image size -> max |onnxruntime - PyTorch| over the outputs (fp32).
        outputs: output names.
    """

    path: Path
    opset: int
    max_abs_diff: dict[int, float] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("pooled",)


def export_onnx(model: VisionTransformer, path: str | Path, opset: int = DEFAULT_OPSET, attention: bool = False,
                check_sizes: tuple[int, ...] = ()) -> OnnxReport:
    """Write ``model`` as ONNX with dynamic batch and image size, then check it with onnxruntime.

    Args:
        model: the backbone.
        path: output .onnx file.
        opset: ONNX opset.
        attention: add the ``attention`` output (B, N).
        check_sizes: square image sides to compare onnxruntime with PyTorch at (default: the
            model's size and 1.5x it, rounded to the patch size).

    Returns:
        :class:`OnnxReport` with the max abs differences.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = OnnxBackbone(model, attention)
    side = model.img_hw[0]
    example = torch.randn(2, model.patch_embed.proj.in_channels, side, side + model.patch_size)
    outputs = ("pooled", "attention") if attention else ("pooled",)
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, **{o: {0: "batch"} for o in outputs}}
    if attention:
        axes["attention"][1] = "patches"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about Python ints the wrapper replaces
        torch.onnx.export(wrapper, (example,), str(path), input_names=["image"], output_names=list(outputs),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    p = model.patch_size
    sizes = check_sizes or (side, max(p, round(1.5 * side / p) * p))
    report = OnnxReport(path, opset, outputs=outputs)
    for s in sizes:
        report.max_abs_diff[s] = check_onnx(path, model, s, attention)
    log.info("ONNX opset %d written to %s; max |onnxruntime - torch|: %s", opset, path, report.max_abs_diff)
    return report


@torch.no_grad()
def check_onnx(path: str | Path, model: VisionTransformer, size: int | tuple[int, int], attention: bool = False,
               batch: int = 2, seed: int = 0) -> float:
    """Max abs difference between onnxruntime (CPU) and the PyTorch model on random images.

    Args:
        path: the exported .onnx file.
        model: the PyTorch backbone it came from.
        size: image side or (H, W).
        attention: also compare the attention output.
        batch: images in the batch.
        seed: random images' seed.

    Returns:
        max |onnx - torch| over every output element.
    """
    import onnxruntime as ort

    h, w = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch, model.patch_embed.proj.in_channels, h, w, generator=torch.Generator().manual_seed(seed))
    model = model.eval()
    ref = model.forward_features(x, return_attention="cls" if attention else None)
    expected = [ref.pooled, ref.attention] if attention else [ref.pooled]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})
    return max(float((torch.from_numpy(g) - e.float()).abs().max()) for g, e in zip(got, expected))
