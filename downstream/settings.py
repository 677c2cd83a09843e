"""The run settings every evaluator config shares: where results go, the device, AMP, progress bars.

Each evaluator's config (``downstream/<evaluator>/cli.py``) extends :class:`EvalSettings`, so the
keys stay ``output=``, ``tensorboard=``, ``device=``, ``amp=``, ``progress=`` everywhere and their
valid values are checked at parse time like pretraining's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pretrain.configuration import ConfigError, choice

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
AMP_MODES: tuple[str, ...] = ("auto", "bf16", "fp16", "none")


@dataclass
class EvalSettings:
    """Output, TensorBoard, device, autocast and progress settings of an evaluator run."""

    output: str = ""  # result file (JSON, or .npz / .pt for features)
    tensorboard: str = ""  # event folder; default <folder of output>/tensorboard
    device: str = choice(*DEVICES)
    amp: str = choice(*AMP_MODES)  # auto: bf16 on CUDA, none on the CPU (the feature forward's autocast)
    progress: bool = True


def check_float32_only(settings: EvalSettings, evaluator: str) -> None:
    """For evaluators that run in float32 only: refuse an ``amp=`` that would be silently ignored.

    Raises:
        ConfigError: ``amp`` is ``bf16`` or ``fp16``.
    """
    if settings.amp not in ("auto", "none"):
        raise ConfigError(f"amp={settings.amp!r}: {evaluator} runs in float32; leave amp=auto (or none)")
