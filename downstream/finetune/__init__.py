"""Full fine-tuning of a pretrained ViT for classification (BEiT / iBOT recipe).

Entry point: ``python -m downstream.finetune`` (:mod:`downstream.finetune.cli`: ``CONFIG``, ``run``, ``main``).
Docs: docs/finetune_segmentation.md.
"""
