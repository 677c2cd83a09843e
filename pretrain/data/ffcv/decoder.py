"""FFCV decoder that decodes each image once and cuts all its multi-crop views from it.

FFCV-SSL builds one pipeline per crop, so a 2x224 + 10x96 recipe decodes every JPEG twelve
times. `MultiCropDecoder` decodes once into a scratch buffer, then for each view draws a random
resized crop, resizes it with `pretrain.data.ffcv.resize.resize_crop_area` (area interpolation;
faster here than ffcv's OpenCV ``resize_crop``) and runs the flip and colour augmentations of
`pretrain.data.ffcv.kernels` on it, writing straight into a crop-major
batch buffer, so ``(G, B, 3, Hg, Wg)`` and ``(L, B, 3, Hl, Wl)`` are zero-copy views of it.

Import this module only through `pretrain.data.ffcv.loader` (it imports ffcv at import time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.libffcv import ctypes_memcopy, imdecode
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.operation import Operation
from ffcv.pipeline.state import State

from pretrain.data.ffcv.kernels import augment_crop, crop_box, sample_state
from pretrain.data.ffcv.resize import resize_crop_area
from pretrain.data.transforms import MultiCropSpec, blur_kernel_size

_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # RandomResizedCrop's default aspect-ratio range, as in the torchvision path


def view_params(spec: MultiCropSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-view constants for the kernels, in output order (globals then locals).

    Returns:
        sizes int64 (V,), scales float64 (V, 2), params float64 (V, 11) (see `augment_crop`),
        blur kernel sides int64 (V,).
    """
    views = spec.views()
    sizes = np.array([v.size for v in views], dtype=np.int64)
    scales = np.array([v.scale for v in views], dtype=np.float64).reshape(len(views), 2)
    params = np.array([[spec.flip_p, spec.jitter_p, *spec.color_jitter, spec.gray_p, v.blur_p,
                        *spec.blur_sigma, v.solarize_p] for v in views], dtype=np.float64)
    ksizes = np.array([blur_kernel_size(v.size, spec.blur_sigma[1]) for v in views], dtype=np.int64)
    return sizes, scales, params, ksizes


def crop_bytes(spec: MultiCropSpec) -> int:
    """Bytes of all crops of one sample: the per-sample size of the output buffer."""
    return 3 * (spec.n_global * spec.global_size ** 2 + spec.n_local * spec.local_size ** 2)


class MultiCropDecoder(Operation):
    """Decode an `RGBImageField` image once and emit all its multi-crop views.

    The output of a batch of B samples is a uint8 array (B, crop_bytes) whose memory holds
    the global crops as (G, B, 3, Hg, Wg) followed by the local crops as (L, B, 3, Hl, Wl).

    Args:
        spec: The augmentation parameters (shared with the torchvision path).
        seed: Base seed of the augmentations.
        epoch_cell: int64 array (1,) holding the current epoch; read by address at every batch,
            because numba freezes arrays captured by compiled code as constants.
        colour: False leaves the colour ops to the device (`pretrain.data.device_colour`).
        redecode: Decode the JPEG again for every crop (FFCV-SSL's cost model; for benchmarks).
    """

    def __init__(self, spec: MultiCropSpec, seed: int, epoch_cell: np.ndarray, colour: bool = True,
                 redecode: bool = False) -> None:
        super().__init__()
        if epoch_cell.dtype != np.int64 or epoch_cell.shape != (1,) or not epoch_cell.flags.c_contiguous:
            raise ValueError("epoch_cell must be a contiguous int64 array of shape (1,)")
        self.spec, self.seed, self.epoch_cell = spec, int(seed), epoch_cell
        self.colour, self.redecode = bool(colour), bool(redecode)

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple[AllocationQuery, ...]]:
        max_pixels = int(self.metadata["width"].max()) * int(self.metadata["height"].max())
        out_shape = (crop_bytes(self.spec),)
        return (replace(previous_state, jit_mode=True, shape=out_shape, dtype=np.dtype("u1")),
                (AllocationQuery(out_shape, np.dtype("u1")), AllocationQuery((3 * max_pixels,), np.dtype("u1"))))

    def generate_code(self) -> Callable:
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c, resize = Compiler.compile(imdecode), resize_crop_area
        augment, box, new_state = augment_crop, crop_box, sample_state
        memcopy = ctypes_memcopy
        jpg = IMAGE_MODES["jpg"]
        sizes, scales, params, ksizes = view_params(self.spec)
        n_views, n_global, max_size = len(sizes), self.spec.n_global, int(sizes.max())
        row_scratch = max_size * 3 * int(self.metadata["width"].max())  # floats of the row-resized crop
        global_bytes, local_bytes = 3 * self.spec.global_size ** 2, 3 * self.spec.local_size ** 2
        seed, epoch_addr = self.seed, int(self.epoch_cell.ctypes.data)
        colour, redecode = self.colour, self.redecode
        ratio_lo, ratio_hi = _RATIO

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            epoch = np.zeros(1, np.int64)
            memcopy(epoch_addr, epoch.ctypes.data, 8)
            batch = destination.shape[0]
            flat = destination.reshape(-1)
            for ix in my_range(len(batch_indices)):
                source_ix = batch_indices[ix]
                field = metadata[source_ix]
                data = mem_read(field["data_ptr"], storage_state)
                height, width = int(field["height"]), int(field["width"])
                is_jpg = field["mode"] == jpg
                if is_jpg:
                    image = temp_storage[ix][: 3 * height * width].reshape(height, width, 3)
                    imdecode_c(data, image, height, width, height, width, 0, 0, 1, 1, False, False)
                else:
                    image = data.reshape(height, width, 3)
                state = new_state(seed, epoch[0], source_ix)
                resized = np.empty(3 * max_size * max_size, np.uint8)
                work = np.empty(3 * max_size * max_size, np.float32)
                tmp = np.empty(3 * max_size * max_size, np.float32)
                rows = np.empty(row_scratch, np.float32)
                for v in range(n_views):
                    size = sizes[v]
                    n = 3 * size * size
                    if redecode and is_jpg and v > 0:
                        imdecode_c(data, image, height, width, height, width, 0, 0, 1, 1, False, False)
                    top, left, h, w = box(state, height, width, scales[v, 0], scales[v, 1], ratio_lo, ratio_hi)
                    crop = resized[:n].reshape(size, size, 3)
                    resize(image, top, left, h, w, crop, rows)
                    if v < n_global:
                        start = (v * batch + ix) * global_bytes
                    else:
                        start = n_global * batch * global_bytes + ((v - n_global) * batch + ix) * local_bytes
                    augment(crop, flat[start: start + n].reshape(3, size, size), state,
                            work[:n].reshape(3, size, size), tmp[:n].reshape(3, size, size),
                            params[v], ksizes[v], colour)
            return destination

        decode.is_parallel = True
        return decode
