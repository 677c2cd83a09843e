"""One iBOT / DINO training step: teacher forward, masks, student forward, losses.

The order is the AttMask one: the teacher sees the unmasked global crops and its last-block
attention (or SimPool map) is the masking score, so masks cost no extra forward pass; the
student then sees the masked global crops and the unmasked local crops. Crops of one
resolution run as one batch (crop-major: all images of crop 0, then crop 1, ...).
Nothing here reads a tensor value on the host, except the number of masked tokens on the CPU
(``patch_selection="exact"``, where the host is the device and the read is free).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from pretrain.data.transforms import normalize_on_device
from pretrain.models.teacher_student import MultiCropNetwork
from pretrain.objective import KoLeoObjective
from pretrain.optim import cancel_last_layer_grads_, clip_gradients_, set_schedules_


@dataclass
class StepOutput:
    """Scalars of one step (device tensors; read them only when logging)."""

    loss: torch.Tensor
    loss_cls: torch.Tensor
    loss_patch: torch.Tensor
    loss_koleo: torch.Tensor  # 0 without a KoLeo term
    masked_fraction: torch.Tensor
    attn_entropy: torch.Tensor
    # kept for the picture log: global crops (G*B, 3, H, W), score (G*B, N), masks (G*B, N)
    images: torch.Tensor
    scores: torch.Tensor | None
    masks: torch.Tensor | None


@dataclass
class StepModules:
    """What one forward step uses.

    Attributes:
        student: :class:`StudentCall` around the student network (possibly DDP-wrapped),
            called once with all crops so DDP sees one forward per backward.
        teacher: The EMA teacher network.
        loss: ``iBOTLoss`` or ``DINOObjective`` (``pretrain.objective``): one call, all terms.
        masker: Mask strategy (``pretrain.masking.Masker``), None: no masked-image modelling.
        generator: Generator of the masks (on the training device).
    """

    student: nn.Module
    teacher: MultiCropNetwork
    loss: nn.Module
    masker: object | None = None
    generator: torch.Generator | None = None


def to_device_crops(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], device: torch.device,
                    mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 (G, B, 3, H, W) crops -> normalised float (G*B, 3, H, W) on the device."""
    glob, loc, _ = batch
    glob = normalize_on_device(glob.to(device, non_blocking=True).flatten(0, 1), mean, std)
    loc = (normalize_on_device(loc.to(device, non_blocking=True).flatten(0, 1), mean, std)
           if loc.shape[0] > 0 else None)
    return glob, loc


def attention_entropy(scores: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of per-image score maps (B, N), renormalised to sum to one."""
    p = scores.float().clamp_min(0)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    return -(p * p.clamp_min(1e-12).log()).sum(-1).mean()


PATCH_SELECTIONS = ("auto", "exact", "bound", "all")


def _read_positions(masks: torch.Tensor | None, loss_masks: torch.Tensor, masker, patch_selection: str):
    """Where the student's patch outputs are computed: ``None`` (every token, ``"all"``), the masks
    themselves (``"exact"``), ``masker.max_count`` positions per crop (``"bound"``), or no position
    (no masker: (B, 0) indices)."""
    if patch_selection == "all":
        return None
    if masks is None:
        return loss_masks.new_empty((loss_masks.shape[0], 0), dtype=torch.long)
    return masks if patch_selection == "exact" else patch_index(masks, masker)


def forward_losses(m: StepModules, glob: torch.Tensor, loc: torch.Tensor | None, teacher_temp: float,
                   teacher_patch_temp: float, autocast: contextlib.AbstractContextManager,
                   patch_selection: str = "auto") -> StepOutput:
    """Computes the loss of one step (forward only; the caller does backward/update).

    The patch loss reads the student's patch outputs on masked tokens only, so the student's last
    block and patch head run only where they are read (same loss, same gradients, fewer FLOPs):
    ``patch_selection="exact"`` on the masked tokens themselves (flat; the host reads their
    number, free on the CPU), ``"bound"`` on ``masker.max_count(N)`` positions per crop (no host
    synchronisation), ``"all"`` on every token (no selection), ``"auto"``: exact on the CPU,
    bound elsewhere.

    Args:
        m: The modules of the step.
        glob: (G*B, 3, H, W) normalised global crops; loc: (L*B, 3, h, w) or None.
        teacher_temp: This step's teacher temperature of the [CLS] loss.
        teacher_patch_temp: This step's teacher temperature of the patch loss (iBOT).
        autocast: The AMP context (``pretrain.amp.autocast_context``).
        patch_selection: see above.
    """
    if patch_selection not in PATCH_SELECTIONS:
        raise ValueError(f"patch_selection={patch_selection!r}: choose one of {PATCH_SELECTIONS}")
    if patch_selection == "auto":
        patch_selection = "exact" if glob.device.type == "cpu" else "bound"
    teacher = m.teacher
    patch_size = teacher.backbone.patch_size
    grid = (glob.shape[-2] // patch_size, glob.shape[-1] // patch_size)
    need_scores = m.masker is not None and m.masker.needs_attention
    with autocast:
        with torch.no_grad():
            t_out = teacher.forward_global(glob, return_attention="cls")
        masks = None
        if m.masker is not None:
            masks = m.masker(glob.shape[0], grid, scores=t_out.attention if need_scores else None,
                             generator=m.generator)
        with_patch = t_out.patch_logits is not None
        # no masker: the patch loss sees no masked token (it is 0; the patch centre still follows the teacher)
        loss_masks = masks if masks is not None or not with_patch else \
            torch.zeros(t_out.patch_logits.shape[:2], dtype=torch.bool, device=glob.device)
        index = _read_positions(masks, loss_masks, m.masker, patch_selection) if with_patch else None
        s_glob, s_loc = m.student(glob, loc, masks, index)
    s_cls = s_glob.cls_logits if s_loc is None else torch.cat([s_glob.cls_logits, s_loc])
    extra = {"student_pooled": s_glob.pooled} if isinstance(m.loss, KoLeoObjective) else {}
    if with_patch:  # iBOT: [CLS] and masked-patch terms
        terms = m.loss(s_cls.float(), t_out.cls_logits.float(), s_glob.patch_logits.float(),
                       t_out.patch_logits.float(), loss_masks, teacher_temp, teacher_patch_temp, patch_index=index,
                       **extra)
    else:  # DINO: the [CLS] term only
        terms = m.loss(s_cls.float(), t_out.cls_logits.float(), teacher_temp, **extra)
    zero = terms.cls.new_zeros(())
    return StepOutput(
        loss=terms.total, loss_cls=terms.cls.detach(), loss_patch=terms.patch.detach(),
        loss_koleo=zero if terms.koleo is None else terms.koleo,
        masked_fraction=masks.float().mean() if masks is not None else zero,
        attn_entropy=attention_entropy(t_out.attention),
        images=glob, scores=t_out.attention, masks=masks,
    )


def patch_index(masks: torch.Tensor, masker: object | None) -> torch.Tensor:
    """(B, M) long positions holding every masked patch of each row, in token order.

    The patch loss reads the student's patch outputs on masked tokens only, so the student
    computes them (last block, head) on these ``M = masker.max_count(N)`` positions per crop
    instead of all ``N`` (the masked ones first, then unmasked ones to fill up; no host sync).
    A masker without ``max_count`` gives all ``N`` positions.
    """
    n = masks.shape[1]
    bound = getattr(masker, "max_count", None)
    m = n if bound is None else min(n, bound(n))
    first = torch.sort(masks.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :m]
    return torch.sort(first, dim=1).values


class StudentCall(nn.Module):
    """All student crops in one ``__call__``: DDP allows one forward per backward, so the
    global and the local path must run inside the same call."""

    def __init__(self, net: MultiCropNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, glob: torch.Tensor, loc: torch.Tensor | None, masks: torch.Tensor | None,
                keep_patches: torch.Tensor | None = None):
        """glob (G*B, 3, H, W), loc (L*B, 3, h, w) or None, masks (G*B, N) or None, keep_patches
        (G*B, M) long or None (the patch positions whose logits the loss reads)."""
        out = self.net.forward_global(glob, masks=masks, keep_patches=keep_patches)
        return out, (self.net.forward_local(loc) if loc is not None else None)


@dataclass(frozen=True)
class UpdateSettings:
    """How :func:`optimizer_step` treats the gradients.

    Attributes:
        clip: Gradient-norm threshold (<= 0: no clipping).
        clip_mode: ``per_param`` (DINO / iBOT's ``clip_gradients``) or ``global``
            (see :func:`pretrain.optim.clip_gradients_`).
        freeze_last_layer_steps: Steps during which the heads' last layer gets no gradient.
    """

    clip: float = 3.0
    clip_mode: str = "per_param"
    freeze_last_layer_steps: int = 0


def optimizer_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, student: nn.Module,
                   loss: torch.Tensor, sched: dict[str, float], step: int, settings: UpdateSettings) -> torch.Tensor:
    """Backward, clip, (skip if non-finite), update. Returns a 0-dim bool 'step was finite'.

    ``sched`` holds this step's ``lr`` and ``wd``; ``step`` is the global step (for the frozen last layer).

    A non-finite loss or gradient skips the update on the device: the fused AdamW kernel reads
    ``found_inf`` and leaves weights and moments untouched, so no host sync is needed.
    """
    set_schedules_(optimizer, sched["lr"], sched["wd"])
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    cancel_last_layer_grads_(student, step, settings.freeze_last_layer_steps)
    norm = clip_gradients_(student, settings.clip if settings.clip > 0 else float("inf"), settings.clip_mode)
    finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
    if scaler is not None:
        scaler.step(optimizer)  # the scaler does its own inf check (and its own sync)
        scaler.update()
    elif optimizer.defaults.get("fused"):
        optimizer.found_inf = (~finite).float()  # read by the fused AdamW kernel
        optimizer.step()
    elif bool(finite):  # non-fused fallback: one host read
        optimizer.step()
    return finite
