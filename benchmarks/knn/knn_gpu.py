"""k-NN evaluation at ImageNet scale on one device: our torch backend vs a DINO-style k-NN.

Synthetic clustered features are drawn on the device (default 1.28M x 384 train, 50k x 384 test,
1000 classes: the ImageNet-1k train / val sizes at ViT-S width), then `downstream.knn.knn_classify`
(backend ``torch``, blocked exact search, one search for all k) and the DINO-style reference
(as in `benchmarks/knn/knn_backends.py`, on the device: full similarity rows per test chunk, one pass per k)
classify the test set for k in {10, 20, 100, 200}. Needs only torch (no faiss): faiss-gpu, where
installed, is a further backend of `downstream.knn_backends` and is timed too.

Usage: python -m benchmarks.knn.knn_gpu [--n-train 1281167 --n-test 50000 --dim 384 --device cuda]
Writes OUT.json and OUT.md (default benchmarks/knn/results/knn_gpu).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.provenance import command_line, load_average, machine_line, utc_now, versions_line

KS = (10, 20, 100, 200)
TEMPERATURE = 0.07


def clustered_features(n: int, centers: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, D) float32 features around random class centres on centres' device, (n,) int64 CPU labels."""
    labels = torch.randint(0, centers.shape[0], (n,), generator=gen, device=centers.device)
    feats = centers[labels] + 3.0 * torch.randn(n, centers.shape[1], generator=gen, device=centers.device)
    return feats, labels.cpu()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def dino_reference(train, train_labels, test, test_labels, k, num_classes):
    """DINO's knn_classifier on the device (its eval_knn.py loop), one k per call."""
    train = torch.nn.functional.normalize(train, dim=1)
    test = torch.nn.functional.normalize(test, dim=1)
    train_labels, test_labels = train_labels.to(train.device), test_labels.to(train.device)
    top1 = top5 = 0
    per_chunk = max(1, test.shape[0] // 100)
    for start in range(0, test.shape[0], per_chunk):
        feats, targets = test[start:start + per_chunk], test_labels[start:start + per_chunk]
        b = feats.shape[0]
        dist, idx = (feats @ train.T).topk(k, largest=True, sorted=True)
        neighbours = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, idx)
        one_hot = torch.zeros(b * k, num_classes, device=train.device)
        one_hot.scatter_(1, neighbours.view(-1, 1), 1)
        probs = (one_hot.view(b, -1, num_classes) * (dist / TEMPERATURE).exp().view(b, -1, 1)).sum(1)
        correct = probs.sort(1, True).indices.eq(targets.view(-1, 1))
        top1 += int(correct[:, :1].sum())
        top5 += int(correct[:, :min(5, k)].sum())
    return {"top1": 100.0 * top1 / test.shape[0], "top5": 100.0 * top5 / test.shape[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=1_281_167)
    ap.add_argument("--n-test", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-reference", action="store_true", help="skip the DINO-style reference")
    ap.add_argument("--out", default="benchmarks/knn/results/knn_gpu")
    args = ap.parse_args()

    from downstream.knn.weighted_knn import knn_classify
    from downstream.knn.backends import available_backends

    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    centers = torch.randn(args.classes, args.dim, generator=gen, device=device)
    train, ytr = clustered_features(args.n_train, centers, gen)
    test, yte = clustered_features(args.n_test, centers, gen)
    result = {"date": utc_now(), "command": command_line(), "machine": machine_line(), "versions": versions_line(),
              "device": str(device), "load_start": load_average(), "n_train": args.n_train, "n_test": args.n_test,
              "dim": args.dim, "classes": args.classes, "runs": {}}
    gpu_faiss = ["faiss_gpu"] if device.type == "cuda" and "faiss_gpu" in available_backends() else []
    impls = ["torch", *gpu_faiss] + ([] if args.no_reference else ["dino_reference"])
    for impl in impls:
        sync(device)
        t0 = time.perf_counter()
        if impl == "dino_reference":
            acc = {f"k={k}": dino_reference(train, ytr, test, yte, k, args.classes) for k in KS}
        else:
            acc = knn_classify(train, ytr, test, yte, KS, TEMPERATURE, backend=impl, device=str(device),
                               chunk_size=4096 if device.type == "cuda" else 1024)
        sync(device)
        result["runs"][impl] = {"seconds": time.perf_counter() - t0, "acc": acc}
        print(f"{impl}: {result['runs'][impl]['seconds']:.2f} s, k=20 top1 {acc['k=20']['top1']:.2f}", flush=True)
    result["load_end"] = load_average()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    ref = result["runs"].get("dino_reference")
    lines = ["# k-NN at ImageNet scale on one device", "",
             (f"Date: {result['date']}. Machine: {result['machine']}; device {device}. Load average: "
              f"{result['load_start']} at the start, {result['load_end']} at the end."), "",
             f"Versions: {result['versions']}.", "", f"Command: `{result['command']}`", "",
             (f"Data: {args.n_train} x {args.dim} train, {args.n_test} x {args.dim} test float32, {args.classes} "
              f"classes (synthetic clusters), k in {list(KS)}, T = {TEMPERATURE}."), "",
             "| implementation | seconds | vs DINO-style | k=20 top1 | k=200 top5 |", "|---|---|---|---|---|"]
    for impl, run in result["runs"].items():
        speed = f"{ref['seconds'] / run['seconds']:.2f}x" if ref else "n/a"
        lines.append(f"| {impl} | {run['seconds']:.2f} | {speed} | {run['acc']['k=20']['top1']:.2f} | "
                     f"{run['acc']['k=200']['top5']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
