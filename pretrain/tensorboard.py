"""TensorBoard scalars, attention/mask pictures and the progress bar of a pretraining run.

Only rank 0 writes. Scalars are accumulated on the device and read every
``log_every`` steps, so the training step itself never waits for the host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from pretrain.metrics_file import MetricsFile

log = logging.getLogger(__name__)

STEP_SCALARS = ("loss", "loss_cls", "loss_patch", "loss_koleo", "masked_fraction", "attn_entropy")


def attention_picture(images: torch.Tensor, scores: torch.Tensor | None,
                      masks: torch.Tensor | None, mean: Sequence[float], std: Sequence[float],
                      max_images: int = 8) -> torch.Tensor:
    """A grid: row 1 the crops, row 2 the attention heat map, row 3 the masked patches in grey.

    Args:
        images: (B, 3, H, W) normalised crops.
        scores: (B, N) masking scores on the patch grid, or None.
        masks: (B, N) bool masks, or None.

    Returns:
        (3, H', W') float image in [0, 1] for ``SummaryWriter.add_image``.
    """
    n = min(max_images, images.shape[0])
    x = images[:n].float().cpu()
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    x = (x * s + m).clamp(0, 1)
    h, w = x.shape[-2:]
    rows = [x]
    gh = gw = None
    if scores is not None:
        sc = scores[:n].float().cpu()
        side = round(sc.shape[1] ** 0.5)
        gh, gw = (side, sc.shape[1] // side) if side * (sc.shape[1] // side) == sc.shape[1] else (1, sc.shape[1])
        sc = sc.view(n, 1, gh, gw)
        lo = sc.amin(dim=(2, 3), keepdim=True)
        hi = sc.amax(dim=(2, 3), keepdim=True)
        heat = F.interpolate((sc - lo) / (hi - lo).clamp_min(1e-12), size=(h, w), mode="nearest")
        rows.append(torch.cat([heat, heat * 0.3, 1 - heat], dim=1))  # warm = high attention
    if masks is not None and gh is not None:
        mk = masks[:n].float().cpu().view(n, 1, gh, gw)
        mk = F.interpolate(mk, size=(h, w), mode="nearest")
        rows.append(x * (1 - mk) + 0.5 * mk)
    return make_grid(torch.cat(rows), nrow=n, padding=2)


class RunMonitor:
    """TensorBoard writer plus a tqdm bar; a no-op on ranks other than 0."""

    def __init__(self, log_dir: Path, enabled: bool, total_steps: int, start_step: int,
                 progress: bool, metrics: MetricsFile | None = None) -> None:
        self.enabled = enabled
        self.metrics = metrics  # the same scalars as JSON lines (``metrics.jsonl``)
        self.warned: set[str] = set()  # warnings given once per run (e.g. a collapse)
        self.writer = None
        self.bar = None
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._t0 = time.perf_counter()
        self._images = 0
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir))
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total_steps, initial=start_step, unit="step",
                                dynamic_ncols=True, desc="pretrain")

    def accumulate(self, values: dict[str, torch.Tensor], images: int) -> None:
        """Adds this step's device scalars (no sync)."""
        if not self.enabled:
            return
        for k, v in values.items():
            v = v.detach().float()
            self._sums[k] = self._sums[k] + v if k in self._sums else v
        self._count += 1
        self._images += images
        if self.bar is not None:
            self.bar.update(1)

    def flush_scalars(self, step: int, extra: dict[str, float], epoch: int = 0) -> dict[str, float]:
        """Writes the means since the last flush plus ``extra`` (lr, wd, ...); returns them."""
        if not self.enabled or self._count == 0:
            return {}
        now = time.perf_counter()
        out = {k: float(v) / self._count for k, v in self._sums.items()}  # the one sync
        out["img_per_s"] = self._images / max(now - self._t0, 1e-9)
        out.update(extra)
        for k, v in out.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        if self.metrics is not None:
            self.metrics.write(step, epoch, {f"train/{k}": v for k, v in out.items()})
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{out.get('loss', float('nan')):.4f}",
                                 img_s=f"{out['img_per_s']:.1f}", refresh=False)
        self._sums, self._count, self._images, self._t0 = {}, 0, 0, now
        return out

    def image(self, tag: str, picture: torch.Tensor, step: int) -> None:
        if self.enabled:
            self.writer.add_image(tag, picture, step)

    def scalar(self, tag: str, value: float, step: int, epoch: int = 0) -> None:
        if self.enabled:
            self.writer.add_scalar(tag, value, step)
            if self.metrics is not None:
                self.metrics.write(step, epoch, {tag: value})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
