"""Our ViT-S/16 vs timm's vit_small_patch16_224: numerical parity and training-step speed.

One run, both models interleaved (order alternating per repeat), same batch, forward +
backward of the pooled embedding. Writes a markdown report with machine and date.

    python -m benchmarks.vit_vs_timm.vit_vs_timm                       # CPU, B=8, 224 px
    python -m benchmarks.vit_vs_timm.vit_vs_timm --device cuda --amp --batch 128 --compile
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.provenance import command_line, cpu_name
from pretrain.models import create_model, load_pretrained



def _pooled_fn(model: torch.nn.Module, is_timm: bool):
    if is_timm:
        return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    return model


def _step(fn, model, x, amp: bool) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = fn(x)
    out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)


def _time(fn, model, x, amp: bool) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one step; CPU time is robust to a busy machine."""
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    _step(fn, model, x, amp)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--img", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--inner", type=int, default=1, help="steps per timed sample")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU (H100 SXM)")
    ap.add_argument("--out", default=None)
    return ap.parse_args()


def _measure(args: argparse.Namespace, dev: torch.device) -> dict:
    """Parity of the pooled features, FLOPs, and interleaved wall / CPU seconds per step of both models."""
    torch.manual_seed(0)
    ref = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=args.img).eval()
    ours = create_model("vit_small", patch_size=16, img_size=args.img).eval()
    report = load_pretrained(ours, ref.state_dict())
    x = torch.randn(args.batch, 3, args.img, args.img)
    with torch.no_grad():
        parity = (ours(x[:4]) - _pooled_fn(ref, True)(x[:4])).abs().max().item()

    ref.to(dev).train()
    ours.to(dev).train()
    x = x.to(dev)
    fns = {"ours": _pooled_fn(ours, False), "timm": _pooled_fn(ref, True)}
    if args.compile:
        fns = {k: torch.compile(f) for k, f in fns.items()}
    models = {"ours": ours, "timm": ref}
    with FlopCounterMode(display=False) as counter:
        _step(_pooled_fn(ours, False), ours, x, False)
    for name in fns:  # warm-up (and compilation)
        for _ in range(2):
            _step(fns[name], models[name], x, args.amp)
    load_start = os.getloadavg()[0]
    times: dict[str, list[float]] = {"ours": [], "timm": []}
    cpu: dict[str, list[float]] = {"ours": [], "timm": []}
    for r in range(args.repeats):
        order = ["ours", "timm"] if r % 2 == 0 else ["timm", "ours"]
        for name in order:
            samples = [_time(fns[name], models[name], x, args.amp) for _ in range(args.inner)]
            times[name].append(sum(s[0] for s in samples) / args.inner)
            cpu[name].append(sum(s[1] for s in samples) / args.inner)
    return {"report": report, "parity": parity, "flops": counter.get_total_flops(), "times": times, "cpu": cpu,
            "load_start": load_start}


def _markdown(args: argparse.Namespace, dev: torch.device, m: dict) -> str:
    times, report = m["times"], m["report"]
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in m["cpu"].items()}
    ratio = med["ours"] / med["timm"]
    tflops = m["flops"] / med["ours"] / 1e12
    if dev.type == "cuda":
        machine = f"{torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda}"
    else:
        machine = f"{cpu_name()}, nproc={os.cpu_count()}, torch threads={torch.get_num_threads()}"
    lines = [
        "# ViT-S/16: ours vs timm",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        (f"- machine: {machine}; 1-min load average at start / end of timing: {m['load_start']:.1f} / "
        f"{os.getloadavg()[0]:.1f}"),
        f"- torch {torch.__version__}, timm {timm.__version__}, python {platform.python_version()}",
        f"- command: `{command_line()}`",
        "",
        "## Parity (timm random init loaded with `load_pretrained`, fp32, eval)",
        "",
        f"- tensors loaded: {report.loaded}, missing {len(report.missing)}, unexpected {len(report.unexpected)}",
        f"- max abs diff of pooled features: {m['parity']:.3g}",
        "",
        (f"## Forward + backward, batch {args.batch} x 3 x {args.img} x {args.img}, "
        f"{'bf16 autocast' if args.amp else 'fp32'}{', torch.compile' if args.compile else ''}"),
        "",
        f"{args.repeats} interleaved repeats (order alternating), median seconds per step:",
        "",
        "| model | median wall s/step | min | max | median process CPU s/step |",
        "|---|---|---|---|---|",
    ]
    for name in ("ours", "timm"):
        lines.append(f"| {name} | {med[name]:.4f} | {min(times[name]):.4f} | {max(times[name]):.4f} "
                     f"| {med_cpu[name]:.4f} |")
    lines += ["", (f"**ratio ours / timm = {ratio:.3f}** wall (< 1: ours faster); "
              f"process CPU time ratio {med_cpu['ours'] / med_cpu['timm']:.3f}"), "",
              (f"FLOPs per step (FlopCounterMode, fwd+bwd): {m['flops'] / 1e9:.1f} GFLOP -> ours "
              f"{tflops:.2f} TFLOP/s")]
    if dev.type == "cuda":
        lines.append(f"; MFU vs {args.peak_tflops:.0f} TFLOP/s bf16 peak: {100 * tflops / args.peak_tflops:.1f}%")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = _parse()
    dev = torch.device(args.device)
    text = _markdown(args, dev, _measure(args, dev))
    print(text)
    default = "vit_vs_timm.md" if dev.type == "cpu" else f"vit_vs_timm_{dev.type}.md"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / default
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
