"""End-to-end pretraining on real Fashion-MNIST: resume equality, truncated checkpoints,
non-finite steps, a 2-process gloo DDP run and every masking/pooling combination."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pretrain.checkpoint import list_step_checkpoints, load_checkpoint
from pretrain.config import PretrainConfig
from pretrain.configuration import ConfigError, load_config
from pretrain.train import NonFiniteLossError, run

REPO = Path(__file__).resolve().parents[2]


def tiny(tmp: Path, root: Path, *extra: str):
    """A seconds-long iBOT run: ViT-pico on 16 px crops (4x4 patch grid), batch 8."""
    return load_config(PretrainConfig, None, [
        "model.name=vit_pico", "model.patch_size=4", "model.drop_path_rate=0.1",
        "head.out_dim=64", "head.patch_out_dim=64", "head.hidden_dim=32", "head.bottleneck_dim=16",
        "data.dataset=fashion_mnist", f"data.root={root}", "data.batch_size=8", "data.num_workers=0",
        "data.global_size=16", "data.local_size=8", "data.n_local=2",
        "optim.epochs=2", "optim.warmup_epochs=1", "loss.warmup_teacher_temp_epochs=1",
        "run.device=cpu", "run.progress=false", "run.log_every_steps=2", "run.image_every_steps=3",
        "run.ckpt_every_steps=2", "run.deterministic=true", f"run.output_dir={tmp}", *extra,
    ])


def final_weights(out: Path) -> dict:
    return load_checkpoint(out / "checkpoint.pt")


def assert_same_weights(a: dict, b: dict) -> None:
    for part in ("student", "teacher"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k} differs"
    for k, v in a["loss"].items():
        assert torch.equal(v, b["loss"][k]), f"loss.{k} differs"


@pytest.mark.slow
def test_interrupted_run_resumes_to_identical_weights(tmp_path, fashion_mnist_root):
    full = tmp_path / "full"
    summary = run(tiny(full, fashion_mnist_root, "run.max_steps=7"))
    assert summary["step"] == 7

    part = tmp_path / "part"
    run(tiny(part, fashion_mnist_root, "run.max_steps=5"))  # "killed" after step 5 ...
    steps = [s for s, _ in list_step_checkpoints(part)]
    assert steps[-1] == 5
    (part / "checkpoints" / "step_00000005.pt").unlink()  # ... before its checkpoint landed
    resumed = run(tiny(part, fashion_mnist_root, "run.max_steps=7"))
    assert resumed["step"] == 7
    assert_same_weights(final_weights(full), final_weights(part))


def test_temporaries_of_a_killed_checkpoint_write_are_removed_at_start(tmp_path, fashion_mnist_root):
    """A kill during atomic_save leaves ``.step_X.pt.tmpPID``; the next start deletes it, keeps the rest."""
    out = tmp_path / "run"
    stale = out / "checkpoints" / ".step_00000002.pt.tmp4242"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    keep = out / "checkpoints" / "notes.txt"
    keep.write_text("not ours to delete")
    summary = run(tiny(out, fashion_mnist_root, "run.max_steps=1"))
    assert summary["step"] == 1
    assert not stale.exists()
    assert keep.read_text() == "not ours to delete"


@pytest.mark.slow
def test_truncated_newest_checkpoint_is_skipped(tmp_path, fashion_mnist_root, caplog):
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=4"))
    newest = out / "checkpoints" / "step_00000004.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # e.g. a full disk during a copy
    caplog.set_level("WARNING")
    summary = run(tiny(out, fashion_mnist_root, "run.max_steps=5"))
    assert "skipping checkpoint at step 4" in caplog.text
    assert summary["step"] == 5
    ref = tmp_path / "ref"
    run(tiny(ref, fashion_mnist_root, "run.max_steps=5"))
    assert_same_weights(final_weights(ref), final_weights(out))


def test_nonfinite_steps_are_skipped_then_abort(tmp_path, fashion_mnist_root):
    # An absurd learning rate blows the weights up within a step or two; every later step is
    # non-finite, gets skipped, and after 3 in a row the run stops with a clear message.
    out = tmp_path / "nan"
    cfg = tiny(out, fashion_mnist_root, "optim.lr=1e30", "optim.warmup_epochs=0",
               "run.max_nonfinite_steps=3", "run.log_every_steps=1", "run.ckpt_every_steps=1",
               "run.max_steps=20")
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps"):
        run(cfg)
    good = list_step_checkpoints(out)
    assert good, "the last good checkpoint must be kept"
    ckpt = load_checkpoint(good[-1][1])
    for v in ckpt["student"].values():
        assert torch.isfinite(v.float()).all()
    assert good[-1][0] < 20


@pytest.mark.parametrize("strategy,pooling", [
    ("none", "cls"), ("random", "cls"), ("block", "gap"), ("attmask_high", "simpool"),
    ("attmask_hint", "cls"), ("attmask_low", "cls"),
])
def test_every_masking_and_pooling_trains(tmp_path, fashion_mnist_root, strategy, pooling):
    out = tmp_path / f"{strategy}_{pooling}"
    summary = run(tiny(out, fashion_mnist_root, f"mask.strategy={strategy}",
                       f"model.pooling={pooling}", "run.max_steps=2"))
    assert summary["step"] == 2
    ckpt = final_weights(out)
    assert ckpt["model"]["kwargs"]["pooling"] == pooling
    assert (out / "config.yaml").read_text().count(f"strategy: {strategy}") == 1
    assert any((out / "tensorboard").iterdir())


def test_patch_selection_key_reaches_the_step_and_every_choice_trains_the_same(tmp_path, fashion_mnist_root,
                                                                              monkeypatch):
    """run.patch_selection: the student outputs computed only where the patch loss reads them (exact,
    bound) train to the weights of the full student (all), up to float rounding; typos fail at parse."""
    import pretrain.train as train_module

    seen = []
    real = train_module.forward_losses

    def recording(*args, **kwargs):  # the real step, noting which selection the trainer asked for
        seen.append(args[6] if len(args) > 6 else kwargs.get("patch_selection", "auto"))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "forward_losses", recording)
    weights = {}
    for selection in ("all", "exact", "bound"):
        out = tmp_path / selection
        run(tiny(out, fashion_mnist_root, "mask.strategy=attmask_high", f"run.patch_selection={selection}",
                 "model.drop_path_rate=0", "run.max_steps=3"))
        assert f"patch_selection: {selection}" in (out / "config.yaml").read_text()
        weights[selection] = final_weights(out)["student"]
    assert seen == ["all"] * 3 + ["exact"] * 3 + ["bound"] * 3
    for selection in ("exact", "bound"):
        for k, v in weights["all"].items():
            torch.testing.assert_close(weights[selection][k], v, rtol=1e-4, atol=1e-5, msg=f"{selection}: {k}")
    with pytest.raises(ConfigError, match="patch_selection"):
        tiny(tmp_path / "typo", fashion_mnist_root, "run.patch_selection=exakt")


def test_dino_method_trains_without_patch_loss(tmp_path, fashion_mnist_root):
    out = tmp_path / "dino"
    summary = run(tiny(out, fashion_mnist_root, "loss.method=dino", "mask.strategy=none",
                       "run.max_steps=2"))
    assert summary["step"] == 2
    assert not any("patch" in k for k in final_weights(out)["loss"])


def test_dino_with_masking_is_a_config_error(tmp_path, fashion_mnist_root):
    from pretrain.configuration import ConfigError

    with pytest.raises(ConfigError, match="mask.strategy=none"):
        run(tiny(tmp_path, fashion_mnist_root, "loss.method=dino", "mask.strategy=random"))


def torchrun(out: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    """A 2-process gloo run of ``pretrain.train`` on the CPU (drop path and masks on)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pretrain.train", "model.name=vit_pico", "model.patch_size=4", "model.drop_path_rate=0.2",
           "head.out_dim=64", "head.patch_out_dim=64", "head.hidden_dim=32", "head.bottleneck_dim=16",
           "data.dataset=fashion_mnist", f"data.root={root}", "data.batch_size=4",
           "data.num_workers=0", "data.global_size=16", "data.local_size=8", "data.n_local=2",
           "mask.strategy=random", "run.device=cpu", "run.progress=false", "run.deterministic=true",
           f"run.output_dir={out}", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path, fashion_mnist_root):
    out = tmp_path / "ddp"
    torchrun(out, fashion_mnist_root, "run.max_steps=3")
    ckpt = final_weights(out)
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2
    assert all(torch.isfinite(v.float()).all() for v in ckpt["student"].values())
    rngs = ckpt["rng_per_rank"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["mask"], rngs[1]["mask"])  # each rank its own


@pytest.mark.slow
def test_two_process_run_interrupted_and_resumed_is_the_same_run(tmp_path, fashion_mnist_root):
    # issue 9: every rank must get its own random streams back (masks, drop path), not rank 0's
    full, part = tmp_path / "full", tmp_path / "part"
    torchrun(full, fashion_mnist_root, "run.max_steps=5")
    torchrun(part, fashion_mnist_root, "run.max_steps=2")  # stopped at an arbitrary step ...
    torchrun(part, fashion_mnist_root, "run.max_steps=5")  # ... and resumed
    assert final_weights(part)["step"] == 5
    assert_same_weights(final_weights(full), final_weights(part))


@pytest.mark.slow
def test_resume_with_another_world_size_reseeds_and_says_so(tmp_path, fashion_mnist_root, caplog):
    out = tmp_path / "ws"
    torchrun(out, fashion_mnist_root, "run.max_steps=2")
    caplog.set_level("WARNING")
    cfg = load_config(PretrainConfig, None, [
        "model.name=vit_pico", "model.patch_size=4", "model.drop_path_rate=0.2", "head.out_dim=64",
        "head.patch_out_dim=64", "head.hidden_dim=32", "head.bottleneck_dim=16", "data.dataset=fashion_mnist",
        f"data.root={fashion_mnist_root}", "data.batch_size=4", "data.num_workers=0", "data.global_size=16",
        "data.local_size=8", "data.n_local=2", "mask.strategy=random", "run.device=cpu", "run.progress=false",
        "run.deterministic=true", f"run.output_dir={out}", "run.max_steps=3"])
    assert run(cfg)["step"] == 3
    assert "written by 2 process(es), this run has 1: random streams re-seeded from (run.seed, rank, step=2)" \
        in caplog.text


def test_manifold_key_variant_trains_on_two_crop_sizes_and_reloads(tmp_path, fashion_mnist_root):
    from pretrain.models import create_model_from_checkpoint

    out = tmp_path / "kua"
    run(tiny(out, fashion_mnist_root, "model.key_variant=kua", "run.max_steps=1"))
    model, report = create_model_from_checkpoint(out / "checkpoint.pt", which="teacher")
    assert report.complete, report
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 128)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 128), "local-crop token count kept"


TINY_ARGS = ["model.name=vit_pico", "model.patch_size=4", "head.out_dim=64", "head.patch_out_dim=64",
             "head.hidden_dim=32", "head.bottleneck_dim=16", "data.dataset=fashion_mnist", "data.batch_size=8",
             "data.num_workers=0", "data.global_size=16", "data.local_size=8", "data.n_local=2",
             "run.device=cpu", "run.progress=false", "run.log_every_steps=1", "run.ckpt_every_steps=1000"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2], ids=["SIGTERM", "SIGUSR2"])
def test_a_signal_to_plain_python_writes_a_checkpoint_and_exits_cleanly(tmp_path, fashion_mnist_root, sig):
    # issue 10 item 5: no launcher involved, a real signal to a real process
    out = tmp_path / "sig"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pretrain.train", *TINY_ARGS, f"data.root={fashion_mnist_root}",
                             f"run.output_dir={out}"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # wait until it trains
        lines.append(line)
        if " step 2/" in line or time.monotonic() > deadline:
            break
    proc.send_signal(sig)
    rest = proc.communicate(timeout=300)[1]
    log = "".join(lines) + rest
    assert proc.returncode == 0, log[-3000:]
    assert "stopping as requested" in log and "run the same command again to resume" in log
    steps = [s for s, _ in list_step_checkpoints(out)]
    assert len(steps) == 1 and steps[0] >= 2
    assert load_checkpoint(out / "checkpoints" / f"step_{steps[0]:08d}.pt")["step"] == steps[0]


def test_resuming_into_a_folder_of_another_model_says_which_keys_differ(tmp_path, fashion_mnist_root):
    # issue 10 item 7: compare before touching anything (config.yaml stays the old one)
    out = tmp_path / "run"
    run(tiny(out, fashion_mnist_root, "run.max_steps=1"))
    saved = (out / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"another model.*'vit_pico'.*head.out_dim: checkpoint 64, now 32.*"
                                          r"model.pooling: checkpoint 'cls', now 'gap'.*run.output_dir="):
        run(tiny(out, fashion_mnist_root, "head.out_dim=32", "head.patch_out_dim=32", "model.pooling=gap"))
    assert (out / "config.yaml").read_text() == saved


def test_unwritable_output_dir_is_a_config_error(tmp_path, fashion_mnist_root):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"run.output_dir=.*a_file/run is not writable"):
        run(tiny(blocker / "run", fashion_mnist_root))


@pytest.mark.slow
def test_config_errors_from_the_command_line_are_one_line(tmp_path, fashion_mnist_root):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for bad, message in (("data.batch_size=0", "config error: data.batch_size=0 must be > 0"),
                         ("run.device=gpu", "config error: run.device='gpu' is not a valid value")):
        proc = subprocess.run([sys.executable, "-m", "pretrain.train", *TINY_ARGS, bad,
                               f"data.root={fashion_mnist_root}", f"run.output_dir={tmp_path}"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_small_folder_counts_skipped_images_once_per_checkpoint_and_aligned_pictures(tmp_path, caplog):
    # 15 good PNGs + 1 broken file, batch 8: 2 steps per epoch; the epoch ends coincide with
    # run.ckpt_every_steps=2, which must not write the same checkpoint twice
    import numpy as np
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rng = np.random.default_rng(0)
    for i in range(16):
        folder = tmp_path / "images" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        if i == 5:
            (folder / "broken.png").write_bytes(b"not a png")
        else:
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    caplog.set_level("INFO")
    summary = run(tiny(out, tmp_path, "data.dataset=imagefolder", f"data.root={tmp_path / 'images'}",
                       "run.ckpt_every_steps=2", "run.image_every_steps=2", "run.log_every_steps=2"))
    assert summary["step"] == 4 and summary["skipped_images"] == 1
    written = [r.getMessage() for r in caplog.records if r.getMessage().startswith("checkpoint ")]
    assert written == [f"checkpoint {out / 'checkpoints' / 'step_00000002.pt'}",
                       f"checkpoint {out / 'checkpoints' / 'step_00000004.pt'}"]
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    assert [e.value for e in events.Scalars("train/skipped_images")][-1] == 1.0
    scalar_steps = {e.step for e in events.Scalars("train/loss")}
    image_steps = {e.step for e in events.Images("train/crops_attention_masks")}
    assert image_steps and image_steps <= scalar_steps == {2, 4}


def test_collapse_warning_after_the_first_epoch_only():
    import math

    from pretrain.loop_settings import collapse_warning

    ln_k = math.log(256)  # ln K = 5.545; warned above 0.9 of it, 4.990
    assert collapse_warning(5.44, 2, ln_k).startswith("the [CLS] loss is 5.440, near ln K = 5.545")
    assert collapse_warning(5.44, 0, ln_k) is None  # the first epoch starts near ln K
    assert collapse_warning(2.40, 3, ln_k) is None and collapse_warning(float("nan"), 3, ln_k) is None
    cfg = tiny(Path("/tmp/unused"), Path("/tmp/unused"), "head.out_dim=64")
    from pretrain.train import loop_settings

    assert loop_settings(cfg, 10).uniform_loss == pytest.approx(math.log(64))
    assert collapse_warning(4.98, 2, ln_k) is None and collapse_warning(5.00, 2, ln_k) is not None  # 0.9 ln K
