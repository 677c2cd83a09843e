"""FFCV evaluation loader: file order, last partial batch, EvalTransform's pixels, downstream use.

ffcv's Compiler is switched off (as in test_ffcv_loader.py): compiling the loader closure costs
~15 s per loader and does not change what is decoded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pretrain.data.ffcv.support import INSTALL_HINT, ffcv_available

pytestmark = [pytest.mark.ffcv,
              pytest.mark.skipif(not ffcv_available(), reason=f"ffcv cannot be imported here. {INSTALL_HINT}")]

SIZE = 32
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "coins")


@pytest.fixture(autouse=True)
def no_compile():
    from ffcv.pipeline.compiler import Compiler

    previous = Compiler.is_enabled
    Compiler.set_enabled(False)
    yield
    Compiler.set_enabled(previous)


@pytest.fixture(scope="module")
def fmnist_beton(tmp_path_factory, fashion_mnist_root):
    """The Fashion-MNIST test split (10k 28 px images, raw) -> (path, dataset)."""
    from pretrain.data.datasets import FashionMNIST
    from pretrain.data.ffcv.writer import write_beton

    path = tmp_path_factory.mktemp("fmnist") / "test.beton"
    write_beton(path, "fashion_mnist", fashion_mnist_root, split="test", workers=1, progress=False)
    return path, FashionMNIST(fashion_mnist_root, split="test")


@pytest.fixture(scope="module")
def photo_beton(tmp_path_factory):
    """14 real photos of mixed sizes (one gray) in two classes, raw pixels -> (path, PIL images, labels)."""
    import skimage.data

    from pretrain.data.datasets import ImageFolderDataset
    from pretrain.data.ffcv.writer import write_beton

    root = tmp_path_factory.mktemp("photos")
    for k in range(14):
        photo = getattr(skimage.data, PHOTOS[k % len(PHOTOS)])()
        image = Image.fromarray(photo if photo.ndim == 2 else photo[..., :3])  # gray stays "L"
        scale = 0.2 + 0.05 * k  # sizes from about 60 to 400 px: every image is resized differently
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
        (root / f"class{k % 2}").mkdir(exist_ok=True)
        image.save(root / f"class{k % 2}" / f"{k:02d}.png")
    path = tmp_path_factory.mktemp("beton") / "photos.beton"
    write_beton(path, "imagefolder", root, write_mode="raw", max_resolution=None, workers=1, progress=False)
    folder = ImageFolderDataset(root)
    images = [Image.open(p) for p, _ in folder.samples]
    return path, images, np.array([label for _, label in folder.samples])


def loader_for(path, **kwargs):
    from pretrain.data.ffcv.loader import build_ffcv_eval_loader

    return build_ffcv_eval_loader(path, **({"image_size": SIZE, "batch_size": 384, "num_workers": 2} | kwargs))


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_fashion_mnist_batches_are_in_file_order_with_the_last_partial_batch(fmnist_beton):
    path, dataset = fmnist_beton
    threads = torch.get_num_threads()
    loader = loader_for(path)
    batches = list(loader)
    assert len(loader) == len(batches) == 27  # 26 full batches of 384 + 16
    assert [b[1].shape[0] for b in batches[-2:]] == [384, 10_000 - 26 * 384]
    images, labels = batches[0]
    assert images.shape == (384, 3, SIZE, SIZE) and images.dtype == torch.uint8 and images.is_contiguous()
    assert labels.shape == (384,) and labels.dtype == torch.int64
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.from_numpy(np.asarray(dataset.targets)))
    assert torch.get_num_threads() == threads, "ffcv changed torch's thread count"
    again = list(loader)  # a second pass gives the same batches (ffcv reuses buffers: ours are copies)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(batches, again))


def test_same_size_images_get_exactly_the_eval_transform_pixels(fmnist_beton):
    from pretrain.data.transforms import EvalTransform

    path, dataset = fmnist_beton
    for resize in (None, 40):
        transform = EvalTransform(SIZE, resize)
        batches = list(loader_for(path, batch_size=1000, resize=resize))
        for index in (0, 1, 4321, 9999):
            got = batches[index // 1000][0][index % 1000]
            assert torch.equal(got, transform(dataset[index][0])), (resize, index)
    assert got[0].float().std() > 10 and torch.equal(got[0], got[2])  # gray replicated, real content


def test_mixed_size_photos_match_the_eval_transform_up_to_resampling(photo_beton):
    from pretrain.data.transforms import EvalTransform

    path, images, labels = photo_beton
    loader = loader_for(path, batch_size=4)
    batches = list(loader)
    assert not loader.same_size and len(loader) == len(batches) == 4
    assert [b[1].shape[0] for b in batches] == [4, 4, 4, 2]
    got = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.from_numpy(labels))
    expected = torch.stack([EvalTransform(SIZE)(image) for image in images])
    uncropped = torch.stack([EvalTransform(SIZE, resize=SIZE)(image) for image in images])  # a wrong crop
    right, wrong = mean_abs(got, expected), mean_abs(got, uncropped)
    # The residue is resampling (OpenCV area vs bicubic): about bilinear-vs-bicubic's 2.5 here.
    # ffcv's own CenterCropRGBImageDecoder (a half-pixel shift at 32 px) gives 11, no crop 25.
    assert right < 4, f"mean abs difference {right:.2f} to EvalTransform"
    assert wrong > 4 * right, f"a wrong crop ({wrong:.2f}) should be far from ours ({right:.2f})"
    gray = [i for i, image in enumerate(images) if image.mode == "L"]
    assert gray and all(torch.equal(got[i][0], got[i][1]) for i in gray)


@pytest.mark.slow
def test_compiled_crop_matches_the_python_closure(photo_beton):
    from ffcv.pipeline.compiler import Compiler

    interpreted = list(loader_for(photo_beton[0], batch_size=4, num_workers=1))
    Compiler.set_enabled(True)  # the autouse fixture switches it back off
    compiled = list(loader_for(photo_beton[0], batch_size=4, num_workers=1))
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(compiled, interpreted))


def test_bad_input_is_named(photo_beton, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.beton"):
        loader_for(tmp_path / "missing.beton")
    with pytest.raises(ValueError, match="resize"):
        loader_for(photo_beton[0], resize=SIZE - 1)
    with pytest.raises(ValueError, match="interpolation"):
        loader_for(photo_beton[0], interpolation="lanczos")


def test_downstream_features_read_the_beton(fmnist_beton, tmp_path):
    """End to end through the CLI; num_workers beyond the CPU count is clipped, not an error."""
    from downstream.features.cli import main
    from downstream.features.files import load_features
    from pretrain.data.transforms import EvalTransform

    path, dataset = fmnist_beton
    out = tmp_path / "pixels.npz"
    main(["--output", str(out), "--device", "cpu", "model.name=pixels", "data.dataset=ffcv",
          f"data.ffcv_path={path}", f"data.image_size={SIZE}", "data.batch_size=1024", "data.num_workers=64",
          "progress=false"])
    features, labels = load_features(out)
    assert torch.equal(labels, torch.from_numpy(np.asarray(dataset.targets)))
    assert features.shape == (10_000, 3 * SIZE * SIZE)
    expected = EvalTransform(SIZE)(dataset[123][0]).float().flatten() / 255
    assert torch.allclose(features[123], expected, atol=1e-6)
