"""Multi-crop / eval transforms on real photos in every common PIL mode, and device normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from pretrain.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    MultiCropSpec,
    MultiCropTransform,
    blur_kernel_size,
    normalize_on_device,
    to_rgb_uint8,
)

SMALL = MultiCropSpec(global_size=64, local_size=32, n_global=2, n_local=3)


def _photo(mode: str) -> Image.Image:
    rgb = Image.fromarray(skdata.astronaut())
    if mode == "I;16":
        return Image.fromarray(skdata.camera().astype(np.uint16) * 257)  # full 16-bit range
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "I;16"])
def test_crop_shapes_dtypes_and_count_for_every_mode(mode):
    image = _photo(mode)
    assert image.mode == mode
    globals_, locals_ = MultiCropTransform(SMALL)(image)
    assert len(globals_) == 2 and len(locals_) == 3
    assert all(c.shape == (3, 64, 64) and c.dtype == torch.uint8 for c in globals_)
    assert all(c.shape == (3, 32, 32) and c.dtype == torch.uint8 for c in locals_)
    assert max(int(c.max()) for c in globals_) > 100  # real content survived the conversion


def test_default_spec_is_the_ibot_recipe_and_tensor_input_works():
    spec = MultiCropSpec()
    views = spec.views()
    assert [v.size for v in views] == [224] * 2 + [96] * 10
    assert [v.blur_p for v in views[:3]] == [1.0, 0.1, 0.5]
    assert [v.solarize_p for v in views[:3]] == [0.0, 0.2, 0.0]
    image = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)  # uint8 (3, H, W)
    globals_, locals_ = MultiCropTransform(spec)(image)
    assert [tuple(c.shape) for c in globals_] == [(3, 224, 224)] * 2
    assert [tuple(c.shape) for c in locals_] == [(3, 96, 96)] * 10


def test_gray_is_replicated_and_16_bit_is_rescaled():
    gray = to_rgb_uint8(_photo("L"))
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    camera = skdata.camera()
    sixteen = to_rgb_uint8(_photo("I;16"))
    assert torch.equal(sixteen[0], torch.from_numpy(camera))  # x * 257 maps back to x exactly
    assert torch.equal(to_rgb_uint8(torch.from_numpy(camera)), to_rgb_uint8(Image.fromarray(camera)))


def test_solarize_only_on_the_second_global_crop():
    # Constant 200 > threshold 128: solarized pixels read 55, all other operations are off.
    spec = MultiCropSpec(global_size=16, local_size=8, n_global=4, n_local=2, jitter_p=0.0, gray_p=0.0,
                         blur_p=(0.0, 0.0, 0.0), solarize_p=1.0)
    image = Image.new("RGB", (40, 30), (200, 200, 200))
    globals_, locals_ = MultiCropTransform(spec)(image)
    # Globals alternate view type 1 / type 2; only type 2 (odd index) is solarized.
    assert [int(c.float().mean().round()) for c in globals_] == [200, 55, 200, 55]
    assert all(bool((c == 200).all()) for c in locals_)


def test_blur_kernel_scales_with_image_size_and_tiny_crops_work():
    assert blur_kernel_size(224, 2.0) == 13
    assert blur_kernel_size(16, 2.0) == 13
    assert blur_kernel_size(8, 2.0) == 7
    assert blur_kernel_size(6, 0.5) == 5
    spec = MultiCropSpec(global_size=32, local_size=16, n_local=4, blur_p=(1.0, 1.0, 1.0), gray_p=0.0,
                         jitter_p=0.0, flip_p=0.0, global_scale=(1.0, 1.0), local_scale=(1.0, 1.0),
                         blur_sigma=(2.0, 2.0), solarize_p=0.0)
    image = Image.fromarray(np.kron(np.eye(4, dtype=np.uint8) * 255, np.ones((7, 7), np.uint8)))  # 28x28 edges
    globals_, locals_ = MultiCropTransform(spec)(image)
    sharp = EvalTransform(32, 32)(image)
    assert globals_[0].shape == (3, 32, 32) and locals_[0].shape == (3, 16, 16)
    # A sigma-2 blur spreads each sharp edge over several pixels: the largest step shrinks.
    grad = lambda x: x.float().diff(dim=-1).abs().max()  # noqa: E731
    assert grad(globals_[0]) < 0.5 * grad(sharp) and grad(locals_[0]) < 0.5 * grad(sharp)


def test_same_seed_same_crops_different_seed_different_crops():
    image = _photo("RGB")
    transform = MultiCropTransform(SMALL)
    torch.manual_seed(3)
    a = transform(image)
    torch.manual_seed(3)
    b = transform(image)
    torch.manual_seed(4)
    c = transform(image)
    assert all(torch.equal(x, y) for x, y in zip(a[0] + a[1], b[0] + b[1]))
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[0][1])  # the two global views differ


def test_eval_transform_resizes_and_center_crops():
    out = EvalTransform(224)(_photo("RGBA"))
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    square = torch.arange(36, dtype=torch.uint8).view(1, 6, 6).expand(3, 6, 6)
    assert torch.equal(EvalTransform(4, resize=6)(square), square[:, 1:5, 1:5])
    with pytest.raises(ValueError, match="resize"):
        EvalTransform(32, resize=28)


def test_normalize_on_device_values_and_dtype():
    x = torch.randint(0, 256, (2, 5, 3, 4, 4), dtype=torch.uint8)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    expected = (x.float() / 255 - mean) / std
    out = normalize_on_device(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    white = normalize_on_device(torch.full((3, 1, 1), 255, dtype=torch.uint8))
    torch.testing.assert_close(white.flatten(), (1 - mean.flatten()) / std.flatten())
    half = normalize_on_device(x, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, rtol=1e-2, atol=1e-2)
    gray = normalize_on_device(x[..., :1, :, :], mean=(0.5,), std=(0.5,))
    torch.testing.assert_close(gray, x[..., :1, :, :].float() / 127.5 - 1)
    with pytest.raises(ValueError, match="expected"):
        normalize_on_device(x[..., :2, :, :])


def test_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="global_scale"):
        MultiCropSpec(global_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="interpolation"):
        MultiCropSpec(interpolation="lanczos")
    with pytest.raises(ValueError, match="n_global"):
        MultiCropSpec(n_global=0)


def test_separable_blur_matches_torchvision_gaussian_blur():
    from torchvision.transforms.v2 import functional as TF

    from pretrain.data.transforms import RandomGaussianBlur

    image = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)[:, :100, :120].contiguous()
    ours = RandomGaussianBlur(13, sigma=(1.7, 1.7), p=1.0)(image)
    reference = TF.gaussian_blur(image, [13, 13], [1.7, 1.7])
    assert ours.dtype == torch.uint8 and ours.shape == image.shape
    assert (ours.int() - reference.int()).abs().max() <= 1  # float rounding only
    assert torch.equal(RandomGaussianBlur(13, (1.0, 2.0), p=0.0)(image), image)
    with pytest.raises(ValueError, match="odd"):
        RandomGaussianBlur(4, (0.1, 2.0))


def test_spec_from_config_lists_is_hashable_and_equal():
    from_lists = MultiCropSpec(global_scale=[0.25, 1], blur_p=[1, 0.1, 0.5], mean=[0.485, 0.456, 0.406])
    assert from_lists == MultiCropSpec() and hash(from_lists) == hash(MultiCropSpec())
    assert from_lists.views()[0].scale == (0.25, 1.0)
