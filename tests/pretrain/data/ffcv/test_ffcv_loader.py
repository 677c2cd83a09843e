"""FFCV multi-crop loader: batch format, determinism, resume, sharding, augmentation kernels.

ffcv's numba compilation of the loader closure costs ~15 s per loader, so most tests switch
ffcv's Compiler off (the closure then runs as Python; our numba kernels stay compiled and
cached); one slow test checks that the compiled pipeline gives the very same crops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain.data.ffcv.support import INSTALL_HINT, ffcv_available

pytestmark = [pytest.mark.ffcv,
              pytest.mark.skipif(not ffcv_available(), reason=f"ffcv cannot be imported here. {INSTALL_HINT}")]

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat")
N_IMAGES = 24


@pytest.fixture(scope="module")
def beton(tmp_path_factory):
    """24 square 64 px crops of real photos in 3 classes, stored raw (exact pixels) -> (path, images, labels)."""
    import skimage.data

    from pretrain.data.ffcv.writer import write_beton

    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for k in range(N_IMAGES):
        photo = getattr(skimage.data, PHOTOS[k % len(PHOTOS)])()
        photo = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo[:, :, :3]
        side = min(photo.shape[:2]) // 2
        top, left = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        image = Image.fromarray(photo[top: top + side, left: left + side]).resize((64, 64), Image.BICUBIC)
        (root / f"class{k % 3}").mkdir(exist_ok=True)
        image.save(root / f"class{k % 3}" / f"{k:03d}.png")
    path = tmp_path_factory.mktemp("beton") / "small.beton"
    write_beton(path, "imagefolder", root, write_mode="raw", max_resolution=None, workers=1, progress=False)
    folder = sorted((p for p in root.rglob("*.png")), key=lambda p: (p.parent.name, p.name))
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in folder])
    labels = np.array([int(p.parent.name[-1]) for p in folder])
    return path, images, labels


@pytest.fixture
def no_compile():
    from ffcv.pipeline.compiler import Compiler

    previous = Compiler.is_enabled
    Compiler.set_enabled(False)
    yield
    Compiler.set_enabled(previous)


def small_spec(**overrides):
    from pretrain.data.transforms import MultiCropSpec

    return MultiCropSpec(**{"global_size": 32, "local_size": 16, "n_local": 3, **overrides})


def make_loader(path, spec=None, **kwargs):
    from pretrain.data.ffcv.loader import FFCVPretrainLoader

    args = {"batch_size": 4, "num_workers": 2, "seed": 0} | kwargs
    return FFCVPretrainLoader(path, spec or small_spec(), **args)


def epoch(loader, number, start_batch=0):
    loader.set_epoch(number, start_batch)
    return list(loader)


def test_batch_format_and_labels_follow_the_shared_order(beton, no_compile):
    from pretrain.data.loader import epoch_indices

    path, _, labels = beton
    threads = torch.get_num_threads()
    loader = make_loader(path)
    batches = epoch(loader, 0)
    assert len(loader) == len(batches) == N_IMAGES // 4
    global_crops, local_crops, batch_labels = batches[0]
    assert global_crops.shape == (2, 4, 3, 32, 32) and global_crops.dtype == torch.uint8
    assert local_crops.shape == (3, 4, 3, 16, 16) and local_crops.dtype == torch.uint8
    assert batch_labels.dtype == torch.int64 and batch_labels.shape == (4,)
    order = epoch_indices(N_IMAGES, 0, 0)
    assert torch.equal(torch.cat([b[2] for b in batches]), torch.from_numpy(labels[order]))
    assert torch.get_num_threads() == threads, "ffcv changed torch's thread count"
    assert global_crops.float().std() > 10, "crops should hold image content, not a constant"


def test_crops_are_a_function_of_seed_epoch_and_index(beton, no_compile):
    path = beton[0]
    first, second = make_loader(path), make_loader(path)
    a, b = epoch(first, 3), epoch(second, 3)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    other_epoch = epoch(first, 4)
    assert not torch.equal(a[0][0], other_epoch[0][0])
    other_seed = epoch(make_loader(path, seed=1), 3)
    assert not torch.equal(a[0][0], other_seed[0][0])


def test_resume_mid_epoch_gives_the_remaining_batches(beton, no_compile):
    loader = make_loader(beton[0])
    full = epoch(loader, 2)
    resumed = epoch(loader, 2, start_batch=2)
    assert len(resumed) == len(full) - 2
    for x, y in zip(resumed, full[2:]):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2])
    assert epoch(loader, 2, start_batch=len(loader)) == []


def test_ranks_get_disjoint_shards(beton, no_compile):
    from pretrain.data.loader import epoch_indices

    path, _, labels = beton
    per_rank = [make_loader(path, rank=r, world_size=2, batch_size=3) for r in range(2)]
    assert [len(x) for x in per_rank] == [N_IMAGES // 2 // 3] * 2
    for rank, loader in enumerate(per_rank):
        got = torch.cat([b[2] for b in epoch(loader, 1)])
        assert torch.equal(got, torch.from_numpy(labels[epoch_indices(N_IMAGES, 0, 1, rank, 2)]))
    assert set(per_rank[0].epoch_order()).isdisjoint(per_rank[1].epoch_order())


def test_full_image_crop_without_colour_ops_matches_an_area_resize(beton, no_compile):
    import cv2

    from pretrain.data.loader import epoch_indices

    path, images, _ = beton
    spec = small_spec(global_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=(0.0, 0.0, 0.0),
                      solarize_p=0.0)
    global_crops, _, _ = epoch(make_loader(path, spec), 0)[0]
    for i, index in enumerate(epoch_indices(N_IMAGES, 0, 0)[:4]):
        expected = cv2.resize(images[index], (32, 32), interpolation=cv2.INTER_AREA)
        got = global_crops[0, i].permute(1, 2, 0).numpy()
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_grayscale_and_flip_probabilities_are_honoured(beton, no_compile):
    spec = small_spec(gray_p=1.0, jitter_p=0.0)
    global_crops, local_crops, _ = epoch(make_loader(beton[0], spec), 0)[0]
    for crops in (global_crops, local_crops):
        assert torch.equal(crops[:, :, 0], crops[:, :, 1]) and torch.equal(crops[:, :, 1], crops[:, :, 2])
    colour = epoch(make_loader(beton[0], small_spec(gray_p=0.0, jitter_p=0.0)), 0)[0][0]
    assert not torch.equal(colour[:, :, 0], colour[:, :, 1])


def test_decode_once_gives_the_same_crops_as_decoding_per_crop(tmp_path, beton, no_compile):
    from pretrain.data.ffcv.writer import write_beton

    root = tmp_path / "jpgs" / "only"
    root.mkdir(parents=True)
    for k, image in enumerate(beton[1][:8]):
        Image.fromarray(image).save(root / f"{k}.jpg", quality=90)
    path = tmp_path / "jpg.beton"
    write_beton(path, "imagefolder", root.parent, write_mode="jpg", workers=1, progress=False)
    once, again = epoch(make_loader(path), 0), epoch(make_loader(path, redecode=True), 0)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(once, again))


def test_kernels_flip_solarize_hue_and_blur():
    from pretrain.data.ffcv.kernels import augment_crop, sample_state

    def run(src, params, ksize=3):
        size = src.shape[0]
        dst = np.zeros((3, size, size), np.uint8)
        work, tmp = np.empty((3, size, size), np.float32), np.empty((3, size, size), np.float32)
        augment_crop(src, dst, sample_state(0, 0, 0), work, tmp, np.asarray(params, np.float64), ksize, True)
        return dst.transpose(1, 2, 0)

    ramp = np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 30, (8, 1, 3))
    none = [0.0, 0.0, 0.4, 0.4, 0.2, 0.1, 0.0, 0.0, 0.1, 2.0, 0.0]
    assert np.array_equal(run(ramp, none), ramp)
    assert np.array_equal(run(ramp, [1.0] + none[1:]), ramp[:, ::-1])
    solarized = run(ramp, none[:10] + [1.0])
    assert np.array_equal(solarized, np.where(ramp >= 128, 255 - ramp, ramp))
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert np.array_equal(run(flat, none[:7] + [1.0] + none[8:], ksize=5), flat)  # blur keeps a constant image
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    hue_only = [0.0, 1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.1, 2.0, 0.0]
    shifted = run(red, hue_only)[0, 0]  # a hue turn drawn from U(-0.5, 0.5): red must change hue
    assert shifted.max() <= 200 and not (shifted[1] == 0 and shifted[2] == 0)


def test_bad_arguments_name_the_problem(beton, tmp_path):
    with pytest.raises(FileNotFoundError, match="attmask-write-beton"):
        make_loader(tmp_path / "missing.beton")
    with pytest.raises(ValueError, match="rank"):
        make_loader(beton[0], rank=2, world_size=2)
    with pytest.raises(ValueError, match="do not fill one batch"):
        make_loader(beton[0], batch_size=N_IMAGES + 1)


@pytest.mark.slow
def test_compiled_pipeline_matches_the_python_closure(beton):
    from ffcv.pipeline.compiler import Compiler

    threads = torch.get_num_threads()
    assert Compiler.is_enabled
    compiled = epoch(make_loader(beton[0]), 5)
    assert torch.get_num_threads() == threads
    Compiler.set_enabled(False)
    try:
        interpreted = epoch(make_loader(beton[0]), 5)
    finally:
        Compiler.set_enabled(True)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(compiled, interpreted))


NO_COLOUR = {"jitter_p": 0.0, "gray_p": 0.0, "blur_p": (0.0, 0.0, 0.0), "solarize_p": 0.0}


def test_colour_on_device_keeps_the_crops_and_applies_the_recipe(beton, no_compile):
    plain = epoch(make_loader(beton[0], small_spec(**NO_COLOUR)), 0)
    on_device = epoch(make_loader(beton[0], small_spec(**NO_COLOUR), device="cpu", colour_on_device=True), 0)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(plain, on_device))
    gray = epoch(make_loader(beton[0], small_spec(**(NO_COLOUR | {"gray_p": 1.0})), device="cpu",
                             colour_on_device=True), 0)[0]
    for crops in gray[:2]:
        assert torch.equal(crops[:, :, 0], crops[:, :, 1]) and torch.equal(crops[:, :, 1], crops[:, :, 2])
    full = make_loader(beton[0], device="cpu", colour_on_device=True)
    first, again = epoch(full, 1), epoch(full, 1)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(first, again))
    assert not torch.equal(first[0][0], epoch(full, 2)[0][0])


def test_device_augment_ops_match_their_definitions():
    from pretrain.data.device_colour import DeviceColourAugment

    ramp = torch.arange(0, 256, 4, dtype=torch.uint8).view(1, 1, 1, 8, 8).expand(2, 3, 3, 8, 8).contiguous()
    solarize = DeviceColourAugment(small_spec(**(NO_COLOUR | {"solarize_p": 1.0, "n_local": 0})), seed=0)
    out, _ = solarize(ramp, torch.empty(0, 3, 3, 16, 16, dtype=torch.uint8), epoch=0, step=0)
    assert torch.equal(out[0], ramp[0])  # the first global view type is never solarized
    assert torch.equal(out[1], torch.where(ramp[1] >= 128, 255 - ramp[1], ramp[1]))
    flat = torch.full((2, 3, 3, 8, 8), 90, dtype=torch.uint8)
    blurred, _ = DeviceColourAugment(small_spec(**(NO_COLOUR | {"blur_p": (1.0, 1.0, 1.0)})), seed=0)(
        flat, torch.empty(0, 3, 3, 16, 16, dtype=torch.uint8), epoch=0, step=0)
    assert torch.equal(blurred, flat)
    jittered, _ = DeviceColourAugment(small_spec(jitter_p=1.0), seed=0)(
        ramp, torch.empty(0, 3, 3, 16, 16, dtype=torch.uint8), epoch=0, step=0)
    assert jittered.shape == ramp.shape and jittered.dtype == torch.uint8 and not torch.equal(jittered, ramp)


def test_numba_colour_ops_match_torchvision_functionals():
    """Each kernel against torchvision's own op on a real photo (0..255 floats, planar)."""
    import skimage.data
    from torchvision.transforms.v2 import functional as TF

    from pretrain.data.ffcv import kernels as K

    photo = torch.from_numpy(skimage.data.astronaut()[100:164, 180:244]).permute(2, 0, 1).float().contiguous()
    scratch = np.empty((3, 64 * 64), np.float32)

    def mine(op, *args):
        planes = photo.numpy().copy()
        op(planes.reshape(3, -1), *args)
        return torch.from_numpy(planes)

    def theirs(fn, *args):
        return fn(photo / 255.0, *args) * 255.0

    pairs = [
        (mine(K._brightness, np.float32(1.3)), theirs(TF.adjust_brightness, 1.3)),
        (mine(K._contrast, np.float32(0.7)), theirs(TF.adjust_contrast, 0.7)),
        (mine(K._saturation, np.float32(1.2), scratch), theirs(TF.adjust_saturation, 1.2)),
        (mine(K._hue, np.float32(0.07), scratch), theirs(TF.adjust_hue, 0.07)),
        (mine(K._hue, np.float32(-0.1), scratch), theirs(TF.adjust_hue, -0.1)),
        (mine(K._grayscale, scratch), theirs(TF.rgb_to_grayscale, 3)),
    ]
    for got, expected in pairs:
        assert (got - expected).abs().max() < 0.1  # torchvision's luma weights differ in the 4th digit
    planes, tmp = photo.numpy().copy(), np.empty((3, 64, 64), np.float32)
    K._gaussian_blur(planes, tmp, 1.5, 13)
    expected = theirs(TF.gaussian_blur, [13, 13], [1.5, 1.5])
    assert (torch.from_numpy(planes) - expected).abs().max() < 0.6
