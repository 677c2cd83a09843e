"""Semantic segmentation with a frozen backbone and a linear head (DINOv2's ``linear`` protocol).

Entry point: ``python -m downstream.segmentation`` (:mod:`downstream.segmentation.cli`: ``CONFIG``, ``run``,
``main``). Data: PASCAL VOC and ADE20K layouts (:mod:`downstream.segmentation.data`); a synthetic VOC-layout
set with exact masks: ``python -m downstream.segmentation.synth``. Docs: docs/finetune_segmentation.md.
"""
