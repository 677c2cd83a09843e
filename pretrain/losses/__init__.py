"""Self-distillation losses: DINO's [CLS] loss and iBOT's masked patch loss."""

from pretrain.losses.dino import DINOLoss
from pretrain.losses.ibot import iBOTLoss, iBOTLossTerms, iBOTPatchLoss

__all__ = ["DINOLoss", "iBOTLoss", "iBOTLossTerms", "iBOTPatchLoss"]
