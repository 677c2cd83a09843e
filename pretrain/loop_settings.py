"""The training loop's settings as plain typed values (built from the config by the entry point)."""

from __future__ import annotations

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
