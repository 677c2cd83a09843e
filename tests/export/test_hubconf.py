"""hubconf.py: torch.hub.load(<checkout>, <name>, source="local", weights=...) for every registered backbone."""

from __future__ import annotations

import pytest
import torch

from pretrain.export.cli import main
from pretrain.models import list_models
from tests.conftest import REPO
from tests.tiny_checkpoint import write_checkpoint


def _hub(name: str, **kwargs) -> torch.nn.Module:
    return torch.hub.load(str(REPO), name, source="local", trust_repo=True, **kwargs)


def test_hubconf_declares_dependencies_and_every_entry_point():
    # torch.hub.list takes GitHub repos only: import the file torch.hub.load(source="local") imports
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    assert "torch" in hub.dependencies
    assert all(callable(getattr(hub, name, None)) for name in list_models())


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_and_exported_folder_give_the_same_model(tmp_path, name):
    ckpt, teacher, _ = write_checkpoint(tmp_path / "c.pt", name=name, patch_size=16, img_size=32,
                                        **({"depth": 2} if name != "vit_pico" else {}))
    main(["--checkpoint", str(ckpt), "--format", "safetensors", "--output", str(tmp_path / "folder")])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = teacher(x)
        for weights in (ckpt, tmp_path / "folder"):
            model = _hub(name, weights=str(weights))
            assert not model.training and torch.equal(model(x), expected)


def test_student_foreign_file_and_random(tmp_path):
    ckpt, _, student = write_checkpoint(tmp_path / "c.pt")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(_hub("vit_pico", weights=str(ckpt), which="student")(x), student(x))
        torch.save({"state_dict": student.state_dict()}, tmp_path / "plain.pth")  # no architecture recorded
        foreign = _hub("vit_pico", weights=str(tmp_path / "plain.pth"), which="student", patch_size=8, img_size=32)
        assert torch.equal(foreign(x), student(x))
    assert _hub("vit_pico", patch_size=8).patch_size == 8  # no weights: random init


def test_wrong_entry_point_is_named(tmp_path):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="holds a vit_pico, not a vit_small"):
        _hub("vit_small", weights=str(ckpt))
