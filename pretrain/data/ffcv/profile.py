"""Per-stage CPU cost of the FFCV multi-crop pipeline (decode, resize, colour), for benchmarks.

Runs the very kernels of `pretrain.data.ffcv.decoder` single-threaded on JPEG files, outside ffcv's
loader, and reports CPU milliseconds per image for each stage, so a benchmark can say where the
time goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from pretrain.data.ffcv.support import import_ffcv
from pretrain.data.transforms import MultiCropSpec


def stage_costs(paths: Sequence[str], spec: MultiCropSpec, repeats: int = 3) -> dict[str, float]:
    """CPU ms per image of each stage over ``paths`` (JPEG files), median of ``repeats`` passes.

    Returns:
        {"decode": ..., "resize": ..., "resize_opencv": ..., "colour": ..., "flip_only": ...};
        decode + resize + colour is the per-image work of the loader threads, decode + resize +
        flip_only their work when the colour ops run on the device. ``resize_opencv`` is the same
        crops resized by ffcv's ``resize_crop`` (OpenCV in the system libopencv), for comparison.
    """
    import_ffcv()
    from ffcv.libffcv import imdecode, resize_crop
    from numba import njit

    from pretrain.data.ffcv.decoder import view_params
    from pretrain.data.ffcv.kernels import augment_crop, crop_box, sample_state
    from pretrain.data.ffcv.resize import resize_crop_area

    decode_c, resize_c = njit(imdecode), njit(resize_crop)
    data = [np.fromfile(p, dtype=np.uint8) for p in paths]
    shapes = [Image.open(p).size[::-1] for p in paths]
    images = [np.empty((h, w, 3), np.uint8) for h, w in shapes]
    sizes, scales, params, ksizes = view_params(spec)
    crops = [np.empty((s, s, 3), np.uint8) for s in sizes]
    outs = [np.empty((3, s, s), np.uint8) for s in sizes]
    scratch = [(np.empty((3, s, s), np.float32), np.empty((3, s, s), np.float32)) for s in sizes]

    def decode() -> None:
        for raw, (h, w), image in zip(data, shapes, images):
            decode_c(raw, image, h, w, h, w, 0, 0, 1, 1, False, False)

    rows = np.empty(int(sizes.max()) * 3 * max(w for _, w in shapes), np.float32)

    def resize() -> None:
        state = sample_state(0, 0, 0)
        for image, (h, w) in zip(images, shapes):
            for v in range(len(sizes)):
                top, left, ch, cw = crop_box(state, h, w, scales[v, 0], scales[v, 1], 3.0 / 4.0, 4.0 / 3.0)
                resize_crop_area(image, top, left, ch, cw, crops[v], rows)

    def resize_opencv() -> None:
        state = sample_state(0, 0, 0)
        for image, (h, w) in zip(images, shapes):
            for v in range(len(sizes)):
                top, left, ch, cw = crop_box(state, h, w, scales[v, 0], scales[v, 1], 3.0 / 4.0, 4.0 / 3.0)
                resize_c(image, top, top + ch, left, left + cw, crops[v])

    def augment(colour: bool) -> Callable[[], None]:
        def run() -> None:
            state = sample_state(0, 0, 0)
            for _ in images:
                for v in range(len(sizes)):
                    augment_crop(crops[v], outs[v], state, scratch[v][0], scratch[v][1], params[v], ksizes[v], colour)
        return run

    stages = {"decode": decode, "resize": resize, "resize_opencv": resize_opencv, "colour": augment(True),
              "flip_only": augment(False)}
    return _cpu_ms_per_image(stages, len(paths), repeats)


def _cpu_ms_per_image(stages: dict[str, Callable[[], None]], count: int, repeats: int) -> dict[str, float]:
    """Median CPU ms per image of each stage; the stages alternate, so load hits them alike."""
    for fn in stages.values():
        fn()  # compile / warm caches
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(repeats):
        for name, fn in stages.items():
            start = time.process_time()
            fn()
            runs[name].append(time.process_time() - start)
    return {name: 1000.0 * float(np.median(r)) / count for name, r in runs.items()}
