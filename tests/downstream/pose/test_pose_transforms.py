"""MS-Transformer's inputs (util/utils.py: Resize 256, RandomCrop / CenterCrop 224, ColorJitter) and equalised epochs."""

import numpy as np
import pytest
import torch

from downstream.pose.sampling import EqualizedSampler, equalized_indices, extra_draw_probabilities
from downstream.pose.transforms import (
    ColorJitter,
    PoseTransform,
    center_offsets,
    resized_shape,
    train_and_test_transforms,
)


def test_resize_and_centre_crop_geometry_hand_values():
    # torchvision Resize(256) on a 480 x 640 7Scenes frame: short side 256, long side int(256 * 640 / 480) = 341
    assert resized_shape(480, 640, 256) == (256, 341) and resized_shape(640, 480, 256) == (341, 256)
    # CenterCrop(224): top round(32 / 2) = 16, left round(117 / 2) = round(58.5) = 58 (half to even)
    assert center_offsets(256, 341, 224) == (16, 58)
    # the crop really starts there: an image already 256 x 341 whose value is the column index
    cols = torch.arange(341).remainder(256).to(torch.uint8)
    img = cols.expand(3, 256, 341).clone()
    out = PoseTransform("ms_transformer", 224, 256)(img)
    assert out.shape == (3, 224, 224) and out[0, 0, 0] == 58 and out[0, 0, 223] == 58 + 223


def test_published_train_transform_is_random_test_is_not():
    train, test = train_and_test_transforms("ms_transformer", 224, 256, True, (0.5, 0.5, 0.5, 0.2))
    assert train.is_random and train.random_crop and train.jitter == ColorJitter(0.5, 0.5, 0.5, 0.2)
    assert not test.is_random and not test.random_crop and test.jitter is None
    # MS-Transformer's "no_augment": training uses the test transform
    assert train_and_test_transforms("ms_transformer", 224, 256, False, (0.5, 0.5, 0.5, 0.2)) == (test, test)
    ours = train_and_test_transforms("short_side_crop", 56, 0, True, (0.5, 0.5, 0.5, 0.2))
    assert ours[0] == ours[1] and not ours[0].is_random
    img = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)
    a = train(img, torch.Generator().manual_seed(3))
    assert a.shape == (3, 224, 224) and a.equal(train(img, torch.Generator().manual_seed(3)))
    assert not a.equal(train(img, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        train(img)


def test_random_crop_stays_inside_the_resized_image():
    # a 256 x 256 image (no resize) cropped to 250: top and left in 0..6; value = row index
    img = torch.arange(256).to(torch.uint8)[:, None].expand(3, 256, 256).clone()
    tops = {int(PoseTransform("ms_transformer", 250, 256, random_crop=True)(img, torch.Generator().manual_seed(s))[0, 0, 0])
            for s in range(60)}
    assert tops == set(range(7))


def test_colour_jitter_ranges():
    gray = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    # contrast blends with the mean, saturation with the gray image, hue rotates a zero chroma: a gray
    # constant image is unchanged whatever the draw, up to uint8 rounding (torchvision's gray weights sum to
    # 0.9999 and its uint8 blends truncate: a few levels)
    for s in range(5):
        out = ColorJitter(0.0, 0.5, 0.5, 0.2)(gray, torch.Generator().manual_seed(s))
        assert (out.int() - 100).abs().max() <= 3 and out.unique().numel() == 1
    # brightness factor uniform in [1 - 0.5, 1 + 0.5]: 100 -> 50 .. 150
    vals = [int(ColorJitter(0.5, 0.0, 0.0, 0.0)(gray, torch.Generator().manual_seed(s))[0, 0, 0]) for s in range(200)]
    assert 50 <= min(vals) < 56 and 144 < max(vals) <= 150
    # hue 0.5 = half a turn at most: pure red can become cyan-ish but stays saturated
    red = torch.zeros(3, 2, 2, dtype=torch.uint8)
    red[0] = 255
    shifted = ColorJitter(0.0, 0.0, 0.0, 0.5)(red, torch.Generator().manual_seed(0))
    assert int(shifted.max(0).values.min()) == 255 and int(shifted.min(0).values.max()) == 0


def test_scene_equalisation_as_ms_transformer():
    # scenes of 3, 1 and 2 frames: an epoch of 3 * 3 = 9; the 3 extra draws pick scene s with
    # probability (3 - n_s) / 3 = 0, 2/3, 1/3
    scene = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(extra_draw_probabilities(np.array([3, 1, 2])), [0.0, 2 / 3, 1 / 3])
    idx = equalized_indices(scene, torch.Generator().manual_seed(0))
    assert len(idx) == 9 and idx[:6].tolist() == list(range(6)) and set(scene[idx[6:]]) <= {1, 2}
    extra = np.concatenate([scene[equalized_indices(scene, torch.Generator().manual_seed(s))[6:]] for s in range(300)])
    assert abs((extra == 1).mean() - 2 / 3) < 0.05
    sampler = EqualizedSampler(scene, torch.Generator().manual_seed(1))
    drawn = list(sampler)
    assert len(sampler) == 9 and len(drawn) == 9 and set(range(6)) <= set(drawn)
    assert equalized_indices(np.array([0, 1]), torch.Generator()).tolist() == [0, 1]  # balanced: nothing added
