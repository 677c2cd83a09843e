"""Image folder robustness (real photos, truncated JPEG, non-image file) and Fashion-MNIST IDX reading."""

from __future__ import annotations

import gzip
import importlib.util
import logging
import operator
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from pretrain.data.datasets import (
    FashionMNIST,
    ImageFolderDataset,
    build_dataset,
    read_idx,
)

PHOTOS = {"astronaut": skdata.astronaut, "chelsea": skdata.chelsea, "coffee": skdata.coffee,
          "camera": skdata.camera, "rocket": skdata.rocket}


def _write_folder(root, corrupt: bool = False):
    """root/animals/{chelsea,astronaut}.jpg, root/things/{camera.png,coffee.jpg,rocket.jpg} (+ 2 bad files)."""
    layout = {"animals": ["astronaut", "chelsea"], "things": ["camera", "coffee", "rocket"]}
    for cls, names in layout.items():
        (root / cls).mkdir(parents=True)
        for name in names:
            suffix = ".png" if name == "camera" else ".jpg"
            Image.fromarray(PHOTOS[name]()).save(root / cls / f"{name}{suffix}", quality=90)
    (root / "things" / "README.txt").write_text("not an image and not an image name: ignored")
    bad = []
    if corrupt:
        full = (root / "animals" / "chelsea.jpg").read_bytes()
        (root / "animals" / "chelsea.jpg").write_bytes(full[: len(full) // 3])  # truncated real JPEG
        (root / "things" / "notes.png").write_text("plain text pretending to be a PNG")
        bad = [root / "animals" / "chelsea.jpg", root / "things" / "notes.png"]
    return bad


def test_image_folder_classes_samples_and_targets(tmp_path):
    _write_folder(tmp_path)
    ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["animals", "things"]
    assert len(ds) == 5
    assert ds.targets.dtype == np.int64 and ds.targets.tolist() == [0, 0, 1, 1, 1]
    image, label = ds[2]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (512, 512) and label == 1
    assert ds.skipped == 0
    ds_t = ImageFolderDataset(tmp_path, transform=lambda im: im.size)
    assert ds_t[0] == ((512, 512), 0)


def test_corrupt_and_non_image_files_are_logged_once_skipped_and_counted(tmp_path, caplog):
    bad = _write_folder(tmp_path, corrupt=True)
    ds = ImageFolderDataset(tmp_path)
    paths = [p for p, _ in ds.samples]
    assert len(ds) == 6
    i_trunc, i_text = paths.index(str(bad[0])), paths.index(str(bad[1]))
    with caplog.at_level(logging.WARNING, logger="pretrain.data.datasets"):
        # The truncated chelsea.jpg is replaced by the next valid sample (deterministically).
        image, label = ds[i_trunc]
        expected_image, expected_label = ds[i_trunc + 1]
        assert label == expected_label and np.array_equal(np.asarray(image), np.asarray(expected_image))
        for i in range(len(ds)):  # hit every file, the bad ones again
            ds[i]
        ds[i_text]
    assert ds.skipped == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per bad file, however often it is hit
    assert any(str(bad[0]) in w and "truncated" in w.lower() for w in warnings)
    assert any(str(bad[1]) in w for w in warnings)


def test_skipped_count_is_shared_with_dataloader_workers(tmp_path):
    _write_folder(tmp_path, corrupt=True)
    ds = ImageFolderDataset(tmp_path, transform=lambda im: torch.tensor(im.size))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert sum(len(b[1]) for b in batches) == 6  # every index yields a sample
    assert ds.skipped == 2  # counted in the workers, read in the main process


def test_last_file_bad_wraps_around_to_the_first(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "things" / "zzz.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    ds = ImageFolderDataset(tmp_path)
    assert ds.samples[-1][0].endswith("zzz.jpg")
    image, label = ds[len(ds) - 1]
    assert label == 0 and np.array_equal(np.asarray(image), np.asarray(ds[0][0])) and ds.skipped == 1


@pytest.mark.slow
def test_skipped_count_works_with_spawned_workers(tmp_path):
    _write_folder(tmp_path, corrupt=True)
    ds = ImageFolderDataset(tmp_path, transform=operator.attrgetter("size"))  # picklable for spawn
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context="spawn")
    assert sum(len(b[1]) for b in loader) == 6
    assert ds.skipped == 2


def test_all_files_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(RuntimeError, match="could be decoded"):
        ds[0]


def test_missing_or_empty_root_names_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does_not_exist.*root/<class name>/<image file>"):
        ImageFolderDataset(tmp_path / "does_not_exist")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no images .*empty.*expected layout"):
        ImageFolderDataset(tmp_path / "empty")


def test_build_dataset(tmp_path, fashion_mnist_root):
    _write_folder(tmp_path / "train")
    assert len(build_dataset("imagefolder", tmp_path, split="train")) == 5
    assert len(build_dataset("imagefolder", tmp_path / "train")) == 5
    with pytest.raises(FileNotFoundError, match="val"):
        build_dataset("imagefolder", tmp_path, split="val")
    fm = build_dataset("fashion_mnist", fashion_mnist_root, split="test", transform=np.asarray)
    assert len(fm) == 10000 and fm[0][0].shape == (28, 28)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("imagenet21k", tmp_path)


def test_fashion_mnist_real_files(fashion_mnist_root):
    train = FashionMNIST(fashion_mnist_root, "train")
    test = FashionMNIST(fashion_mnist_root, "test", as_pil=False)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    for ds in (train, test):
        assert ds.targets.dtype == np.int64 and ds.labels.min() == 0 and ds.labels.max() == 9
        assert np.bincount(ds.labels).tolist() == [len(ds) // 10] * 10  # balanced classes
    assert len(train.classes) == 10 and train.classes[9] == "Ankle boot"
    image, label = train[0]
    assert image.mode == "L" and image.size == (28, 28) and label == int(train.labels[0])
    array, _ = test[0]
    assert isinstance(array, np.ndarray) and array.shape == (28, 28) and array.max() > 0


def test_fashion_mnist_raw_files_and_extraction_root(tmp_path, fashion_mnist_root):
    nested = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    nested.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        src = fashion_mnist_root / f"{name}.gz"
        if src.exists():
            (nested / name).write_bytes(gzip.decompress(src.read_bytes()))  # raw, uncompressed
        else:
            shutil.copy(fashion_mnist_root / name, nested / name)
    raw = FashionMNIST(tmp_path, "test")  # the dpkg -x root is searched too
    reference = FashionMNIST(fashion_mnist_root, "test")
    assert np.array_equal(raw.images, reference.images) and np.array_equal(raw.labels, reference.labels)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        FashionMNIST(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        FashionMNIST(tmp_path, "validation")


def test_truncated_or_bad_idx_files_give_clear_errors(tmp_path, fashion_mnist_root):
    src = fashion_mnist_root / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(src.read_bytes()) if src.exists() else (fashion_mnist_root / src.stem).read_bytes()
    assert read_idx_bytes(tmp_path, raw).shape == (10000,)
    with pytest.raises(ValueError, match="truncated"):
        read_idx_bytes(tmp_path, raw[:5000])
    with pytest.raises(ValueError, match="truncated"):
        read_idx_bytes(tmp_path, gzip.compress(raw)[:2000])  # cut gzip stream
    with pytest.raises(ValueError, match="magic"):
        read_idx_bytes(tmp_path, b"\x12\x34" + raw[2:])
    with pytest.raises(ValueError, match="dimensions"):
        read_idx(_write(tmp_path, raw), ndim=3)
    with pytest.raises(ValueError, match="truncated"):
        # A truncated images file in place of the real one: FashionMNIST reports it.
        images = gzip.decompress((fashion_mnist_root / "t10k-images-idx3-ubyte.gz").read_bytes()) \
            if (fashion_mnist_root / "t10k-images-idx3-ubyte.gz").exists() \
            else (fashion_mnist_root / "t10k-images-idx3-ubyte").read_bytes()
        (tmp_path / "t10k-images-idx3-ubyte").write_bytes(images[:-784])
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(raw)
        FashionMNIST(tmp_path, "test")


def _write(tmp_path, content: bytes):
    path = tmp_path / "file-idx-ubyte"
    path.write_bytes(content)
    return path


def read_idx_bytes(tmp_path, content: bytes) -> np.ndarray:
    return read_idx(_write(tmp_path, content))


def _three_files_with_loops(root):
    """root/a/{astronaut,camera}.png, root/b/coffee.png (3 real files) + symlink loops and a second link."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for cls, name in (("a", "astronaut"), ("a", "camera"), ("b", "coffee")):
        Image.fromarray(PHOTOS[name]()[::8, ::8]).save(root / cls / f"{name}.png")
    (root / "a" / "up").symlink_to("..")  # the loop of the issue: a/up/a/up/...
    (root / "b" / "self").symlink_to(".")  # b/self/self/...
    (root / "b" / "again").symlink_to("../a")  # a second way into class a (would re-label a's files as b)


def test_symlink_loops_count_each_real_file_once(tmp_path, caplog):
    _three_files_with_loops(tmp_path)
    with caplog.at_level(logging.WARNING, logger="pretrain.data.datasets"):
        ds = ImageFolderDataset(tmp_path)
    assert ds.classes == ["a", "b"]
    assert sorted((p.rsplit("/", 1)[-1], y) for p, y in ds.samples) == [
        ("astronaut.png", 0), ("camera.png", 0), ("coffee.png", 1)]
    assert [p for p, _ in ds.samples] == [str(tmp_path / "a" / "astronaut.png"), str(tmp_path / "a" / "camera.png"),
                                          str(tmp_path / "b" / "coffee.png")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 folder(s)" in warnings[0]  # a/up, b/again, b/self: logged once


def test_symlinked_folder_outside_the_tree_is_followed(tmp_path):
    outside = tmp_path / "elsewhere" / "cats"
    outside.mkdir(parents=True)
    Image.fromarray(PHOTOS["chelsea"]()[::8, ::8]).save(outside / "chelsea.png")
    root = tmp_path / "data"
    (root / "dogs").mkdir(parents=True)
    Image.fromarray(PHOTOS["coffee"]()[::8, ::8]).save(root / "dogs" / "d.png")
    (root / "cats").symlink_to(outside)  # a linked class folder
    (root / "dogs" / "more").symlink_to(outside)  # ... linked a second time: counted once, as class cats
    ds = ImageFolderDataset(root)
    assert [(p.rsplit("/", 1)[-1], y) for p, y in ds.samples] == [("chelsea.png", 0), ("d.png", 1)]


@pytest.mark.slow  # the ffcv writer's start-up: 10-20 s on a busy 2-core machine
@pytest.mark.skipif(importlib.util.find_spec("ffcv") is None, reason="ffcv is not installed")
def test_beton_writer_writes_each_real_file_once(tmp_path):
    from pretrain.data.ffcv.writer import write_beton

    _three_files_with_loops(tmp_path / "imgs")
    report = write_beton(tmp_path / "x.beton", "imagefolder", tmp_path / "imgs", max_resolution=64, workers=1,
                         progress=False)
    assert report.written == 3 and report.skipped == []


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "zebra").mkdir()
    (tmp_path / "zebra" / "notes.txt").write_text("no image here")
    with pytest.raises(FileNotFoundError, match=r"class folder .*zebra holds no image.*remove it"):
        ImageFolderDataset(tmp_path)


def test_skip_unreadable_returns_none_and_eval_loader_drops_exactly_those(tmp_path):
    from pretrain.data.loader import build_eval_loader

    bad = _write_folder(tmp_path, corrupt=True)
    (tmp_path / "things" / "empty.jpg").write_bytes(b"")  # 0-byte file
    ds = ImageFolderDataset(tmp_path, skip_unreadable=True)
    paths = [p for p, _ in ds.samples]
    assert len(ds) == 7 and ds[paths.index(str(bad[0]))] is None
    def sizes(im):  # (W, H) identifies each photo
        return torch.tensor(im.size)

    loader = build_eval_loader(ds, sizes, batch_size=2, num_workers=0)
    images, labels = zip(*[(x, y) for x, y in loader if len(y)])
    got = [(tuple(s.tolist()), int(y)) for x, ys in zip(images, labels) for s, y in zip(x, ys)]
    expected = [(Image.open(p).size, y) for p, y in ds.samples if p not in {str(b) for b in bad}
                and not p.endswith("empty.jpg")]
    assert got == expected and len(got) == 4
    assert ds.skipped == 3 and sorted(ds.skipped_paths) == sorted(map(str, bad + [tmp_path / "things" / "empty.jpg"]))


def test_fashion_mnist_validation_split_is_a_stratified_disjoint_partition(fashion_mnist_root):
    full = FashionMNIST(fashion_mnist_root, "train", as_pil=False)
    fit = build_dataset("fashion_mnist", fashion_mnist_root, "train_fit")
    held = build_dataset("fashion_mnist", fashion_mnist_root, "train_holdout")
    assert (len(fit), len(held)) == (50000, 10000)
    assert np.intersect1d(fit.indices, held.indices).size == 0
    assert np.array_equal(np.sort(np.concatenate([fit.indices, held.indices])), np.arange(60000))
    assert np.bincount(held.labels, minlength=10).tolist() == [1000] * 10  # stratified
    for ds in (fit, held):  # images and labels are the rows of the full split they claim to be
        rows = np.array([0, 1, len(ds) // 2, len(ds) - 1])
        assert np.array_equal(ds.images[rows], full.images[ds.indices[rows]])
        assert np.array_equal(ds.labels, full.labels[ds.indices])
        image, label = ds[int(rows[2])]
        assert np.array_equal(np.asarray(image), full.images[ds.indices[rows[2]]]) and label == ds.labels[rows[2]]
    again = FashionMNIST(fashion_mnist_root, "train_holdout")
    assert np.array_equal(again.indices, held.indices)  # deterministic across constructions


def test_unknown_fashion_mnist_split_names_the_valid_ones(fashion_mnist_root):
    with pytest.raises(ValueError, match="train_fit, train_holdout"):
        FashionMNIST(fashion_mnist_root, "val")
