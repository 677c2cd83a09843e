"""The synthetic VOC-layout builder: masks exact by construction, and a tiny set that reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from downstream.segmentation.data import read_pair, voc_samples
from downstream.segmentation.synth import NUM_CLASSES, SegSynthConfig, build, compose


def test_compose_mask_is_exact():
    item = np.zeros((28, 28), np.uint8)
    item[7:21, 7:21] = 220  # a bright square
    image, label = compose(np.zeros((64, 64, 3), np.uint8), [(item, 4)], size=32, rng=np.random.default_rng(0))
    obj = label == 5  # class 4 -> label 5 (0 is the background)
    assert obj.any()
    assert (image[obj] > 40).all() and (image[label == 0] == 0).all()  # object pixels bright, background black
    ring = label == 255
    assert ring.any() and not (ring & obj).any()
    # the ignore ring touches the object: every ring pixel has an object neighbour
    padded = np.pad(obj, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert neighbours[ring].all()


def test_build_writes_a_readable_voc_layout(tmp_path: Path, fashion_mnist_root: Path):
    counts = build(SegSynthConfig(out=str(tmp_path), fashion_mnist=str(fashion_mnist_root), size=32,
                                  train_images=3, val_images=2))
    assert counts == {"train": 3, "val": 2}
    for split in ("train", "val"):
        for sample in voc_samples(tmp_path, split):
            image, label = read_pair(sample, NUM_CLASSES, reduce_zero_label=False)
            assert image.shape == (32, 32, 3)
            assert set(np.unique(label)) <= set(range(NUM_CLASSES)) | {255} and (label > 0).any()
