"""Offline localization + background-robustness benchmark from installed real images (one command).

Foregrounds with exact masks: Fashion-MNIST items (upscaled bilinear, mask = pixel > 40 / 255; the 10
classes), and for the localization set also scikit-image's horse silhouette and its coins (Otsu
threshold + connected components). Backgrounds: real photos and textures shipped by scikit-image,
scikit-learn (china, flower) and matplotlib (grace_hopper), plus Debian ``mate-backgrounds`` nature
photos when ``mate=True`` and apt is available. Each class owns a *family* of background photos
(round robin), so in the training split (and in ``original``) the background predicts the class,
as ImageNet-9 backgrounds do (Xiao et al., ICLR 2021).

Written layouts under ``out``:

* ``wsol/``: wsolevaluation layout (``wsol_onblack/`` the same on black backgrounds, with ``black_set``): ``images/test/*.png``, ``masks/test/*.png`` (255 = object),
  ``metadata/test/{image_ids,class_labels,image_sizes,localization}.txt`` (exact inclusive boxes) and
  ``masks.txt`` (path,mask,ignore lines for PxAP).
* ``bg/``: Backgrounds Challenge layout: ``original/train/<class>/*.png`` and
  ``<variant>/val/<class>/*.png`` for original, only_fg, no_fg, only_bg_b, only_bg_t, mixed_same,
  mixed_rand, mixed_next, and ``fg_mask/val/<class>/*.npy``.

Usage::

    python -m downstream.localization.synth --out data/locbench seed=0 size=112
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

__all__ = ["BG_VARIANTS", "CLASSES", "SynthConfig", "build", "load_backgrounds", "main"]

CLASSES = ("00_tshirt", "01_trouser", "02_pullover", "03_dress", "04_coat", "05_sandal", "06_shirt", "07_sneaker",
           "08_bag", "09_boot")
BG_VARIANTS = ("original", "only_fg", "no_fg", "only_bg_b", "only_bg_t", "mixed_same", "mixed_rand", "mixed_next")
SKIMAGE_BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "coffee", "grass", "gravel", "hubble_deep_field",
                       "immunohistochemistry", "moon", "page", "text", "retina", "rocket", "clock", "colorwheel",
                       "cell")


@dataclass
class SynthConfig:
    out: str = "data/locbench"
    fashion_mnist: str = "data"  # folder with (or to fetch) the Fashion-MNIST IDX files
    size: int = 112  # image side
    train_per_class: int = 60
    val_per_class: int = 20
    loc_images: int = 200
    scale: list[float] = field(default_factory=lambda: [0.35, 0.7])  # object side / image side
    black_set: bool = True  # also wsol_onblack/: the localization set on black (the training domain)
    mate: bool = False  # add Debian mate-backgrounds nature photos (apt-get download, ~47 MB)
    seed: int = 0
    progress: bool = True


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (255 * (a - a.min()) / max(1e-9, float(a.max() - a.min()))).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3])


def load_backgrounds(mate: bool = False, cache: str | Path = "data/debian") -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 (H, W, 3)) background photos from installed packages, in a fixed order."""
    import skimage.data

    out = []
    for name in SKIMAGE_BACKGROUNDS:
        try:
            out.append((f"skimage.{name}", _rgb(getattr(skimage.data, name)())))
        except Exception as exc:  # noqa: BLE001 - an optional image missing from this skimage version
            log.info("skipping skimage.data.%s: %s", name, exc)
    try:
        from sklearn.datasets import load_sample_images

        out += [(f"sklearn.{n}", _rgb(im)) for n, im in zip(("china", "flower"), load_sample_images().images)]
    except ImportError:
        log.info("scikit-learn not installed: no china / flower backgrounds")
    try:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            out.append(("matplotlib.grace_hopper", _rgb(np.array(Image.open(f).convert("RGB")))))
    except (ImportError, OSError):
        log.info("matplotlib sample data not available")
    if mate:
        from downstream.localization.debian import MATE_NATURE, fetch_package

        try:
            folder = fetch_package(*MATE_NATURE, cache)
            for p in sorted(folder.glob("*.jpg")):
                with Image.open(p) as im:
                    im.thumbnail((800, 800))
                    out.append((f"mate.{p.stem}", _rgb(np.array(im.convert("RGB")))))
        except RuntimeError as exc:
            log.warning("mate-backgrounds unavailable (%s): using the other photos only", exc)
    return out


def _crop(bg: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square crop (side >= 60% of the short side) resized to size x size."""
    h, w = bg.shape[:2]
    side = int(rng.uniform(0.6, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return np.array(Image.fromarray(bg[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR))


def _fashion(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from pretrain.data.datasets import read_idx
    from pretrain.data.fashion_mnist import ensure_fashion_mnist

    folder = ensure_fashion_mnist(root)
    prefix = "train" if split == "train" else "t10k"

    def find(name: str) -> Path:
        return folder / name if (folder / name).exists() else folder / f"{name}.gz"

    return read_idx(find(f"{prefix}-images-idx3-ubyte")), read_idx(find(f"{prefix}-labels-idx1-ubyte"))


def _object(item: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Gray 28x28 item -> (RGB (side, side, 3), bool mask)."""
    big = np.array(Image.fromarray(item).resize((side, side), Image.BILINEAR))
    return _rgb(big), big > 40


def _skimage_objects() -> list[tuple[np.ndarray, np.ndarray]]:
    """The horse silhouette (dark brown) and single coins, each (RGB, bool mask) cropped to the object."""
    import skimage.data
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    horse = ~skimage.data.horse()
    objs = [(np.broadcast_to(np.array([120, 70, 30], np.uint8), (*horse.shape, 3)).copy(), horse)]
    coins = skimage.data.coins()
    fg = coins > threshold_otsu(coins)
    for r in regionprops(label(fg)):
        if r.area > 800:
            y0, x0, y1, x1 = r.bbox
            objs.append((_rgb(coins[y0:y1, x0:x1]), r.image))
    return objs


def _paste(bg: np.ndarray, obj: np.ndarray, mask: np.ndarray, xy: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``obj`` where ``mask`` at top-left ``xy``; returns (image, full-size bool mask)."""
    img, full = bg.copy(), np.zeros(bg.shape[:2], bool)
    x, y = xy
    h, w = mask.shape
    full[y:y + h, x:x + w] = mask
    img[full] = obj[mask]
    return img, full


def _box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def _place(rng: np.random.Generator, cfg: SynthConfig, obj: np.ndarray, mask: np.ndarray):
    side = int(rng.uniform(*cfg.scale) * cfg.size)
    h, w = mask.shape
    f = side / max(h, w)
    nh, nw = max(1, int(h * f)), max(1, int(w * f))
    o = np.array(Image.fromarray(obj).resize((nw, nh), Image.BILINEAR))
    m = np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize((nw, nh), Image.NEAREST)) > 127
    xy = (int(rng.integers(0, cfg.size - nw + 1)), int(rng.integers(0, cfg.size - nh + 1)))
    return o, m, xy


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def build(cfg: SynthConfig) -> dict:
    """Write both layouts; returns counts. Deterministic for a given seed and set of installed images."""
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    bgs = load_backgrounds(cfg.mate, Path(cfg.fashion_mnist) / "debian")
    if len(bgs) < len(CLASSES):
        raise RuntimeError(f"only {len(bgs)} background photos found: need at least {len(CLASSES)}")
    family = {c: [bgs[i][1] for i in range(c, len(bgs), len(CLASSES))] for c in range(len(CLASSES))}
    counts = {"backgrounds": len(bgs)}
    tr_x, tr_y = _fashion(cfg.fashion_mnist, "train")
    te_x, te_y = _fashion(cfg.fashion_mnist, "test")

    def pick(x, y, c):
        idx = np.flatnonzero(y == c)
        return x[idx[rng.integers(len(idx))]]

    bar = tqdm(total=len(CLASSES) * (cfg.train_per_class + cfg.val_per_class) + cfg.loc_images * (1 + cfg.black_set),
               desc="benchmark", disable=not cfg.progress)
    bg_root = out / "bg"
    for c, cname in enumerate(CLASSES):  # training split: original only, class-family backgrounds
        for i in range(cfg.train_per_class):
            o, m, xy = _place(rng, cfg, *_object(pick(tr_x, tr_y, c), 28))
            bg = _crop(family[c][rng.integers(len(family[c]))], cfg.size, rng)
            _save(bg_root / "original" / "train" / cname / f"{i:05d}.png", _paste(bg, o, m, xy)[0])
            bar.update()
    for c, cname in enumerate(CLASSES):
        for i in range(cfg.val_per_class):
            o, m, xy = _place(rng, cfg, *_object(pick(te_x, te_y, c), 28))
            own = _crop(family[c][rng.integers(len(family[c]))], cfg.size, rng)
            same = _crop(family[c][rng.integers(len(family[c]))], cfg.size, rng)
            rc = int(rng.integers(len(CLASSES)))
            rand = _crop(family[rc][rng.integers(len(family[rc]))], cfg.size, rng)
            nc = (c + 1) % len(CLASSES)
            nxt = _crop(family[nc][rng.integers(len(family[nc]))], cfg.size, rng)
            img, full = _paste(own, o, m, xy)
            x0, y0, x1, y1 = _box(full)
            no_fg = own.copy()
            no_fg[full] = 0
            only_bg_b = own.copy()
            only_bg_b[y0:y1 + 1, x0:x1 + 1] = 0
            only_bg_t = own.copy()  # the box filled with the same background shifted by half the image
            shifted = np.roll(own, (cfg.size // 2, cfg.size // 2), axis=(0, 1))
            only_bg_t[y0:y1 + 1, x0:x1 + 1] = shifted[y0:y1 + 1, x0:x1 + 1]
            variants = {"original": img, "only_fg": _paste(np.zeros_like(own), o, m, xy)[0], "no_fg": no_fg,
                        "only_bg_b": only_bg_b, "only_bg_t": only_bg_t, "mixed_same": _paste(same, o, m, xy)[0],
                        "mixed_rand": _paste(rand, o, m, xy)[0], "mixed_next": _paste(nxt, o, m, xy)[0]}
            for v, im in variants.items():
                _save(bg_root / v / "val" / cname / f"{i:05d}.png", im)
            (bg_root / "fg_mask" / "val" / cname).mkdir(parents=True, exist_ok=True)
            np.save(bg_root / "fg_mask" / "val" / cname / f"{i:05d}.npy", full)
            bar.update()
    counts["bg_train"], counts["bg_val"] = len(CLASSES) * cfg.train_per_class, len(CLASSES) * cfg.val_per_class
    counts["loc"] = _build_wsol(cfg, rng, bgs, te_x, te_y, bar)
    if cfg.black_set:  # the same kind of objects on black: Fashion-MNIST's own domain (a sanity check)
        counts["loc_onblack"] = _build_wsol(cfg, np.random.default_rng(cfg.seed + 1), None, te_x, te_y, bar,
                                            "wsol_onblack")
    bar.close()
    return counts


def _build_wsol(cfg: SynthConfig, rng, bgs, te_x, te_y, bar, folder: str = "wsol") -> int:
    root = Path(cfg.out) / folder
    meta = root / "metadata" / "test"
    meta.mkdir(parents=True, exist_ok=True)
    extra = _skimage_objects()
    lines: dict[str, list[str]] = {k: [] for k in ("ids", "cls", "sizes", "loc", "masks")}
    for i in range(cfg.loc_images):
        if i % 10 == 9:  # one image in ten: the horse or a coin (labels 10 / 11)
            k = int(rng.integers(len(extra)))
            obj, mask, label = *extra[k], 10 if k == 0 else 11
        else:
            j = int(rng.integers(len(te_y)))
            (obj, mask), label = _object(te_x[j], 28), int(te_y[j])
        o, m, xy = _place(rng, cfg, obj, mask)
        if bgs is None:
            bg = np.zeros((cfg.size, cfg.size, 3), np.uint8)
        else:
            bg = _crop(bgs[int(rng.integers(len(bgs)))][1], cfg.size, rng)
        img, full = _paste(bg, o, m, xy)
        rel, mrel = f"images/test/{i:05d}.png", f"masks/test/{i:05d}.png"
        _save(root / rel, img)
        _save(root / mrel, full.astype(np.uint8) * 255)
        lines["ids"].append(rel)
        lines["cls"].append(f"{rel},{label}")
        lines["sizes"].append(f"{rel},{cfg.size},{cfg.size}")
        lines["loc"].append(f"{rel},{','.join(map(str, _box(full)))}")
        lines["masks"].append(f"{rel},{mrel},")
        bar.update()
    for name, key in (("image_ids.txt", "ids"), ("class_labels.txt", "cls"), ("image_sizes.txt", "sizes"),
                      ("localization.txt", "loc"), ("masks.txt", "masks")):
        (meta / name).write_text("\n".join(lines[key]) + "\n")
    return cfg.loc_images


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m downstream.localization.synth [--out DIR] key=value ...``: build the benchmark."""
    from downstream.eval_cli import parse_with_aliases

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_with_aliases(SynthConfig, argv, {"--out": "out"}, __doc__)
    print(build(cfg))


if __name__ == "__main__":
    main()
