"""`python -m downstream.attention` on real photos (scikit-image's), one of them non-square, plus bad input."""

from __future__ import annotations

import pytest

skimage_data = pytest.importorskip("skimage.data")
from PIL import Image  # noqa: E402

from downstream.attention.cli import main  # noqa: E402
from tests.tiny_checkpoint import write_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea"):  # 512 x 512 and 300 x 451 (non-square)
        Image.fromarray(getattr(skimage_data, name)()).save(folder / f"{name}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


@pytest.mark.parametrize("kwargs,source,heads", [({}, "cls", 4), ({"pooling": "simpool"}, "simpool", 1)])
def test_pictures_per_image_and_grid(tmp_path, photos, capsys, kwargs, source, heads):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt", **kwargs)
    main(["--checkpoint", str(ckpt), "--images", str(photos), "--output", str(tmp_path / "out"), "image_size=48",
          "device=cpu"])
    out = capsys.readouterr().out
    assert f"2 pictures ({source} maps, {heads} per image)" in out and "skipped 1 unreadable" in out
    chelsea = Image.open(tmp_path / "out" / "chelsea.png")
    # shorter side 48, longer 451 * 48 / 300 = 72.2 -> 72; 3 rows of titled tiles, 5 columns (photo + 4 heads
    # for [CLS]; the five masking strategies in both cases)
    assert chelsea.size == (5 * 72, 3 * (48 + 14))
    grid = Image.open(tmp_path / "out" / "grid.png")
    assert grid.size == (5 * 72, 3 * (48 + 14) + 8 + 3 * (48 + 14))


def test_missing_checkpoint_is_one_line(tmp_path, photos, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(tmp_path / "no.pt"), "--images", str(photos), "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err == f"error: checkpoint file not found: {tmp_path / 'no.pt'}"


def test_only_unreadable_images_is_an_error(tmp_path, capsys):
    ckpt, _, _ = write_checkpoint(tmp_path / "c.pt")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(ckpt), "--images", str(tmp_path / "imgs"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "no readable image among the 1 file(s)" in err and len(err.splitlines()) == 1
