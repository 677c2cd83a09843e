"""Images/s of the FFCV multi-crop loader against the torchvision DataLoader path, in one run.

Same recipe (MultiCropSpec defaults: 2x224 + 10x96, iBOT augmentations), same JPEGs, same
worker count, same batch size. Loaders compared:

- ``torchvision``: `pretrain.data.loader.build_pretrain_loader` + `MultiCropTransform` (the fallback path).
- ``ffcv-redecode``: our FFCV pipeline decoding the JPEG again for every crop, the cost model
  of FFCV-SSL (one decoder pipeline per crop).
- ``ffcv``: our FFCV pipeline, each image decoded once and all 12 crops cut from it.

The image set: random crops of the real photos shipped in scikit-image and scikit-learn, resized
to a 400-500 px long side and saved as JPEG (quality 90) in an ImageFolder (one class per photo).
The loaders run in alternating rounds (one epoch slice each), so background load on a shared
machine hits all of them alike; the first round (worker start-up, numba compilation) is not timed.

Usage: python -m benchmarks.ffcv_loader.ffcv_loader [--images 2000] [--workers 2] [--batch-size 64] [--rounds 4]
Writes benchmarks/ffcv_loader/results/ffcv_loader.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line

RESULTS = Path(__file__).resolve().parent / "results" / "ffcv_loader.md"


def real_photos() -> dict[str, np.ndarray]:
    """The RGB photos of skimage.data and sklearn's sample images (uint8 (H, W, 3))."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
             "retina", "camera", "brick", "grass", "gravel"]
    photos = {}
    for name in names:
        try:
            image = getattr(skimage.data, name)()
        except (ImportError, OSError, ValueError):  # some need pooch downloads: skip what is not shipped
            continue
        photos[name] = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]
    for name, image in zip(["china", "flower"], load_sample_images().images):
        photos[name] = image
    return photos


def build_image_folder(folder: Path, count: int, seed: int = 0) -> None:
    """Save ``count`` random crops of the real photos, long side 400-500 px, as JPEGs."""
    rng = np.random.default_rng(seed)
    photos = real_photos()
    names = sorted(photos)
    for k in range(count):
        name = names[k % len(names)]
        photo = photos[name]
        h, w = photo.shape[:2]
        side_h, side_w = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
        top, left = rng.integers(0, h - side_h + 1), rng.integers(0, w - side_w + 1)
        crop = Image.fromarray(photo[top: top + side_h, left: left + side_w])
        long_side = int(rng.integers(400, 501))
        scale = long_side / max(crop.size)
        crop = crop.resize((max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))),
                           Image.BICUBIC)
        (folder / name).mkdir(parents=True, exist_ok=True)
        crop.save(folder / name / f"{k:05d}.jpg", quality=90)


def cpu_seconds() -> float:
    """CPU time of this process (all threads: ffcv's) and its live children (DataLoader workers)."""
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def time_round(loader, epoch: int, batches: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``batches`` batches of epoch ``epoch`` in steady state.

    The clock starts when the first batch arrives, so each loader's start-up latency (filling its
    prefetch queue, ffcv's thread start) is left out of both paths alike.
    """
    loader.set_epoch(epoch)
    iterator = iter(loader)
    next(iterator)
    wall, cpu = time.perf_counter(), cpu_seconds()
    for _ in range(batches):
        global_crops, local_crops, _ = next(iterator)
        assert global_crops.dtype == torch.uint8 and local_crops.shape[0] > 0
    if global_crops.is_cuda:
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    del iterator
    return wall, cpu


def libffcv_opencv() -> str:
    """The OpenCV that ffcv's compiled helper links (not necessarily opencv-python's cv2)."""
    import ffcv._libffcv

    ffcv._libffcv  # noqa: B018 - loaded: its libraries now appear in this process's memory map
    for line in Path("/proc/self/maps").read_text().splitlines() if Path("/proc/self/maps").exists() else []:
        if "libopencv_imgproc" in line:
            return Path(os.path.realpath(line.split()[-1])).name
    return "unknown"


def versions() -> str:
    """Versions of every library on the measured paths, and the OpenCV the resize used to run in."""
    names = ("torch", "torchvision", "ffcv", "numba", "opencv-python", "numpy", "Pillow")
    return f"{versions_line(names)}, libffcv links {libffcv_opencv()}"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4, help="timed batches per loader per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds incl. the untimed first one")
    parser.add_argument("--workdir", default=None, help="keep the images and beton here (default: temp dir)")
    parser.add_argument("--device-colour", default=None, metavar="DEVICE",
                        help="also time the ffcv loader with the colour ops on DEVICE (e.g. cuda)")
    parser.add_argument("--out", default=str(RESULTS))
    return parser.parse_args()


def _time_loaders(loaders: dict, args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per round (the first round untimed) of each loader, rounds interleaved."""
    times: dict[str, list[float]] = {name: [] for name in loaders}
    cpu: dict[str, list[float]] = {name: [] for name in loaders}
    images = args.batches * args.batch_size
    for r in range(args.rounds):
        for name, entry in loaders.items():
            loader = entry() if callable(entry) else entry
            wall, cpu_s = time_round(loader, r, args.batches)
            if callable(entry):
                del loader
                gc.collect()  # frees the DataLoader iterator, which stops and joins its workers
            else:
                loader.close()
            if r > 0:
                times[name].append(wall)
                cpu[name].append(cpu_s)
            print(f"round {r} {name}: {images / wall:.1f} images/s, {1000 * cpu_s / images:.1f} CPU ms/image",
                  flush=True)
    return times, cpu


def main() -> None:
    args = _parse()
    load_start = load_average()

    from pretrain.data.datasets import ImageFolderDataset
    from pretrain.data.ffcv.loader import FFCVPretrainLoader
    from pretrain.data.ffcv.profile import stage_costs
    from pretrain.data.ffcv.writer import write_beton
    from pretrain.data.loader import build_pretrain_loader
    from pretrain.data.transforms import MultiCropSpec, MultiCropTransform

    torch.set_num_threads(1)  # the main process only collates; workers do the work in both paths
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ffcv-bench-"))
    folder, beton = workdir / "images", workdir / "images.beton"
    if not folder.exists():
        build_image_folder(folder, args.images)
    if not beton.exists():
        write_beton(beton, "imagefolder", folder, max_resolution=512, jpeg_quality=90, workers=args.workers,
                    progress=False)
    spec = MultiCropSpec()
    dataset = ImageFolderDataset(folder)

    def torchvision_loader():
        return build_pretrain_loader(dataset, MultiCropTransform(spec), args.batch_size, args.workers, seed=0)

    # A fresh torchvision loader per round, shut down after it: abandoned DataLoader workers keep
    # decoding their prefetched batches and would bill that CPU to the next loader's round.
    loaders = {
        "torchvision": torchvision_loader,
        "ffcv-redecode": FFCVPretrainLoader(beton, spec, args.batch_size, args.workers, seed=0, redecode=True),
        "ffcv": FFCVPretrainLoader(beton, spec, args.batch_size, args.workers, seed=0),
    }
    if args.device_colour:  # decode + crop + flip on the CPU threads, colour ops on the device
        loaders["ffcv-device-colour"] = FFCVPretrainLoader(beton, spec, args.batch_size, args.workers, seed=0,
                                                           device=args.device_colour, colour_on_device=True)
    times, cpu = _time_loaders(loaders, args)
    images = args.batches * args.batch_size
    rate = {name: images / statistics.median(t) for name, t in times.items()}
    cost = {name: 1000 * statistics.median(c) / images for name, c in cpu.items()}
    jpegs = sorted(str(p) for p in folder.rglob("*.jpg"))
    stages = stage_costs(jpegs[:: max(1, len(jpegs) // 64)][:64], spec)
    write_report(Path(args.out), args, rate, cost, times, stages, machine_line(), versions(),
                 f"{load_start} at the start, {load_average()} at the end")


def write_report(out: Path, args: argparse.Namespace, rate: dict[str, float], cost: dict[str, float],
                 times: dict[str, list[float]], stages: dict[str, float], machine_line: str, versions_line: str,
                 load_line: str) -> None:
    base, base_cost = rate["torchvision"], cost["torchvision"]
    images = args.batches * args.batch_size
    rows = [f"| {name} | {r:.1f} | **{r / base:.2f}x** | {r / rate['ffcv-redecode']:.2f}x | {cost[name]:.1f} | "
            f"{base_cost / cost[name]:.2f}x | {', '.join(f'{images / s:.0f}' for s in times[name])} |"
            for name, r in rate.items()]
    text = "\n".join([
        "# FFCV multi-crop loader vs torchvision DataLoader",
        "",
        f"Date: {utc_now()}. Machine: {machine_line}. Load average (1, 5, 15 min): {load_line}.",
        "",
        f"Versions: {versions_line}.",
        "",
        (f"Recipe: 2x224 + 10x96 crops (MultiCropSpec defaults), batch {args.batch_size}, "
        f"{args.workers} workers in every loader (DataLoader processes / ffcv threads), {args.images} JPEGs "
        "(400-500 px, quality 90) cut from the real photos of scikit-image / scikit-learn; the beton stores "
        "the same images as JPEG (max side 512, quality 90). Median over "
        f"{args.rounds - 1} timed rounds of {args.batches} batches each (steady state: the clock starts at "
        "each round's first batch), loaders interleaved per round so background load hits all alike. "
        "CPU ms/image: CPU time of the process and its workers per image, which does not depend on "
        "what else runs on the machine."),
        "",
        ("| loader | images/s | vs torchvision | vs FFCV-SSL-style re-decode | CPU ms/image | CPU vs torchvision "
         "| images/s per round |"),
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        ("Where the `ffcv` loader's CPU time goes (single-threaded kernels on 64 of the JPEGs, CPU ms per "
        "image; the stages alternate): " + ", ".join(f"{name.replace('_', ' ')} {ms:.2f}" for name, ms in stages.items())
        + ". `resize` is the loader's numba kernel (`pretrain.data.ffcv.resize`), `resize opencv` the same crops "
        "through ffcv's `resize_crop` (OpenCV in the library libffcv links), which the loader used before. "
        "With `colour_on_device=True` the loader threads do decode + resize + flip only."),
        "",
        f"Command: `{command_line()}`",
        "",
    ])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
