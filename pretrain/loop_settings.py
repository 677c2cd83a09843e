"""The training loop's settings as plain typed values (built from the config by the entry point)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.step import UpdateSettings


@dataclass(frozen=True)
class LoopSettings:
    """What :mod:`pretrain.train`'s loop needs to know besides the built objects.

    Attributes:
        epochs: Epochs of the run (``optim.epochs``).
        max_steps: Stop after this many steps (> 0), for tests and demos; 0 runs every epoch.
        log_every_steps: Scalars are read from the device and logged this often.
        ckpt_every_steps: Step checkpoints this often (and at each epoch end).
        keep_last: Step checkpoints kept.
        image_every_steps: Picture of crops, attention and masks this often (0: never).
        max_nonfinite_steps: Consecutive non-finite steps that stop the run.
        knn_every_epochs: Online k-NN check this often (0: never).
        n_global: Global crops per image (images per step = global batch rows / n_global).
        patch_selection: Which student outputs the step computes (``pretrain.step.forward_losses``).
        update: Gradient clipping and last-layer freezing of :func:`pretrain.step.optimizer_step`.
        uniform_loss: The [CLS] loss against a uniform teacher, ln(head.out_dim) (:func:`collapse_warning`).
    """

    epochs: int
    max_steps: int
    log_every_steps: int
    ckpt_every_steps: int
    keep_last: int
    image_every_steps: int
    max_nonfinite_steps: int
    knn_every_epochs: int
    n_global: int
    patch_selection: str
    update: UpdateSettings
    uniform_loss: float = math.inf


COLLAPSE_FRACTION = 0.9  # a [CLS] loss above this fraction of ln K after the first epoch: collapsed


def collapse_warning(loss_cls: float, epoch: int, uniform_loss: float) -> str | None:
    """The warning for a [CLS] loss that says the teacher's outputs are near uniform, else None.

    Cross-entropy against a uniform teacher over K prototypes is ln K; a run whose [CLS] loss climbs
    back towards it after the first epoch has collapsed to uniform outputs (measured: a DINO + KoLeo
    run at lr 1e-2 went from 3.8 at step 250 to 5.44 of ln 256 = 5.55 and its k-NN from 76 to 37,
    while the same recipe with other seeds went down to 2.4). The first epoch is left out: the loss
    starts near ln K.
    """
    if epoch < 1 or not loss_cls > COLLAPSE_FRACTION * uniform_loss:
        return None
    return (f"the [CLS] loss is {loss_cls:.3f}, near ln K = {uniform_loss:.3f} (K = head.out_dim): the "
            "teacher's outputs are near uniform, the run has most likely collapsed. Lower optim.lr, raise "
            "optim.warmup_epochs or sharpen the teacher (loss.teacher_temp), and watch the online k-NN")
