"""Beton writer: real photos and Fashion-MNIST in, corrupt files reported and skipped, exact pixels back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pretrain.data.ffcv.support import INSTALL_HINT, ffcv_available

pytestmark = [pytest.mark.ffcv,
              pytest.mark.skipif(not ffcv_available(), reason=f"ffcv cannot be imported here. {INSTALL_HINT}")]


@pytest.fixture
def photo_folder(tmp_path):
    """Real photos in two classes (one gray PNG, one large JPEG) plus three broken files."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    root = tmp_path / "photos"
    (root / "animals").mkdir(parents=True)
    (root / "things").mkdir()
    Image.fromarray(skimage.data.chelsea()).save(root / "animals" / "chelsea.jpg", quality=90)
    Image.fromarray(skimage.data.astronaut()).save(root / "things" / "astronaut.jpg", quality=90)
    Image.fromarray(skimage.data.camera()).save(root / "things" / "camera.png")  # gray, 512x512
    Image.fromarray(load_sample_images().images[0]).save(root / "things" / "china.jpg")  # 640x427
    good = (root / "things" / "astronaut.jpg").read_bytes()
    broken = {
        root / "animals" / "truncated.jpg": good[: len(good) // 3],
        root / "animals" / "empty.jpg": b"",
        root / "things" / "notes.png": b"not an image at all",
    }
    for path, data in broken.items():
        path.write_bytes(data)
    return root, sorted(str(p) for p in broken)


def read_back(path, count):
    """Images (count, H, W, 3) and labels of a constant-size beton, in file order."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.pipeline import PipelineSpec
    from ffcv.pipeline.compiler import Compiler

    previous = Compiler.is_enabled
    Compiler.set_enabled(False)  # skip numba's compile: a few images decode fine in Python
    try:
        loader = Loader(str(path), batch_size=count, num_workers=1, order=OrderOption.SEQUENTIAL,
                        indices=np.arange(count), drop_last=False,
                        pipelines={"image": PipelineSpec("image", decoder=SimpleRGBImageDecoder()),
                                   "label": PipelineSpec("label", decoder=IntDecoder())})
        images, labels = next(iter(loader))
        return images.copy(), labels.ravel().copy()
    finally:
        Compiler.set_enabled(previous)


def test_corrupt_files_are_reported_and_skipped(photo_folder, tmp_path, caplog):
    from ffcv.reader import Reader

    from pretrain.data.ffcv.writer import write_beton

    root, broken = photo_folder
    out = tmp_path / "photos.beton"
    report = write_beton(out, "imagefolder", root, max_resolution=256, workers=2, progress=False)
    assert report.written == 4
    assert sorted(path for path, _ in report.skipped) == broken
    assert all(reason for _, reason in report.skipped)
    assert report.classes == ["animals", "things"]
    for path in broken:
        assert path in caplog.text, "every skipped file must be logged with its path"
    reader = Reader(str(out))
    assert reader.num_samples == 4
    image_meta = reader.metadata["f0"]
    assert image_meta["width"].max() <= 256 and image_meta["height"].max() <= 256
    assert max(image_meta["width"][-1], image_meta["height"][-1]) == 256  # china 640x427 -> 256x171
    assert list(reader.metadata["f1"]) == [0, 1, 1, 1]
    sidecar = json.loads((tmp_path / "photos.beton.json").read_text())
    assert sidecar["written"] == 4 and len(sidecar["skipped"]) == 3 and sidecar["write_mode"] == "jpg"


def test_raw_mode_stores_exact_pixels_and_gray_becomes_rgb(tmp_path):
    import skimage.data

    from pretrain.data.ffcv.writer import write_beton

    root = tmp_path / "square" / "only"
    root.mkdir(parents=True)
    gray = skimage.data.camera()[100:164, 200:264]
    colour = skimage.data.astronaut()[50:114, 150:214]
    Image.fromarray(gray).save(root / "a_gray.png")
    Image.fromarray(colour).save(root / "b_colour.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(root / "c_gray16.png")  # 16-bit: 65535 -> 255
    out = tmp_path / "square.beton"
    write_beton(out, "imagefolder", root.parent, write_mode="raw", max_resolution=None, workers=1, progress=False)
    images, labels = read_back(out, 3)
    assert np.array_equal(images[0], np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(images[1], colour)
    assert np.array_equal(images[2], images[0]), "16-bit images must be rescaled, not clipped"
    assert labels.tolist() == [0, 0, 0]


def test_fashion_mnist_to_beton(tmp_path, fashion_mnist_root):
    from pretrain.data.datasets import FashionMNIST
    from pretrain.data.ffcv.writer import write_beton

    out = tmp_path / "fmnist.beton"
    report = write_beton(out, "fashion_mnist", fashion_mnist_root, split="test", workers=2, progress=False)
    assert report.written == 10000 and report.skipped == []
    reference = FashionMNIST(fashion_mnist_root, split="test", as_pil=False)
    images, labels = read_back(out, 16)
    assert np.array_equal(images[..., 0], reference.images[:16]) and np.array_equal(images[..., 2], images[..., 0])
    assert np.array_equal(labels, reference.labels[:16])


def test_cli_prints_the_summary_and_fails_cleanly(photo_folder, tmp_path, capsys):
    from pretrain.data.ffcv.writer import main

    root, broken = photo_folder
    out = tmp_path / "cli.beton"
    assert main(["--root", str(root), "--out", str(out), "--workers", "1", "--max-resolution", "128",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 4 images" in printed and "skipped 3 unreadable file(s)" in printed
    assert all(path in printed for path in broken)
    only_bad = tmp_path / "bad" / "cls"
    only_bad.mkdir(parents=True)
    (only_bad / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(only_bad.parent), "--out", str(tmp_path / "none.beton"), "--workers", "1",
              "--no-progress"])
    assert exit_info.value.code == 2
    assert "no readable images" in capsys.readouterr().err
