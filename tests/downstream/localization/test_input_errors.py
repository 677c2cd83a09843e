"""Nothing silently wrong (issue 22): bad localization input is one line naming the file / line / image, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from downstream.localization.metrics import BoxAccumulator, PxAPAccumulator, thresholds_for


def test_nan_box_is_an_error_naming_image_and_value():
    acc = BoxAccumulator([0.5])
    with pytest.raises(ValueError, match=r"img7: box \[nan, 10.0, 19.0, 19.0\] holds NaN"):
        acc.add(np.ones((20, 20)), np.array([[np.nan, 10, 19, 19]]), name="img7")
    assert acc.count == 0  # not counted as a miss


@pytest.mark.parametrize("value", [2, 128, 0.5])
def test_mask_value_outside_0_1_255_is_an_error(value):
    mask = np.zeros((4, 4), np.float32)
    mask[1, 1] = value
    with pytest.raises(ValueError, match=f"img3: mask value {float(value)}.* not 0 .*1 .*255"):
        PxAPAccumulator(thresholds_for(0.1)).add(np.ones((4, 4)), mask, name="img3")


def _main_fails(argv, capsys) -> str:
    from downstream.localization.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*argv, "progress=false", "data.num_workers=0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("error: "), err
    return err


@pytest.fixture
def wsol(tmp_path):
    """A two-image wsolevaluation layout."""
    meta = tmp_path / "metadata" / "test"
    meta.mkdir(parents=True)
    (tmp_path / "images").mkdir()
    for n in ("a", "b"):
        Image.new("RGB", (14, 14)).save(tmp_path / "images" / f"{n}.png")
    (meta / "image_ids.txt").write_text("images/a.png\nimages/b.png\n")
    (meta / "image_sizes.txt").write_text("images/a.png,14,14\nimages/b.png,14,14\n")
    (meta / "localization.txt").write_text("images/a.png,1,1,5,5\nimages/b.png,nan,2,6,6\n")
    return tmp_path


def _wsol_args(root):
    return [f"data.root={root}", "data.format=wsol", "data.image_size=14", "model.name=vit_pico",
            "model.patch_size=7"]


def test_nan_in_wsol_localization_names_file_and_line(wsol, capsys):
    err = _main_fails(_wsol_args(wsol), capsys)
    assert f"{wsol / 'metadata/test/localization.txt'}:2: box field 'nan' is not finite" in err


def test_missing_wsol_image_names_the_file_and_the_fix(wsol, capsys):
    (wsol / "metadata/test/localization.txt").write_text("images/a.png,1,1,5,5\nimages/b.png,2,2,6,6\n")
    (wsol / "images" / "b.png").unlink()
    err = _main_fails(_wsol_args(wsol), capsys)
    assert f"image {wsol / 'images/b.png'}" in err and "not found" in err and "data.root" in err


@pytest.fixture
def maps_files(tmp_path):
    np.savez(tmp_path / "maps.npz", maps=np.random.default_rng(0).random((2, 8, 8)).astype(np.float32))
    (tmp_path / "boxes.json").write_text('{"boxes": [[[1, 1, 5, 5]], [[0, 0, 3, 3]]]}')
    return tmp_path


def _maps_args(d, boxes="boxes.json", masks=None):
    out = ["--maps", str(d / "maps.npz"), "--boxes", str(d / boxes)]
    return out + (["--masks", str(d / masks)] if masks else [])


def test_box_with_three_numbers(maps_files, capsys):
    (maps_files / "boxes.json").write_text('{"boxes": [[[1, 1, 5, 5]], [[0, 0, 3]]]}')
    err = _main_fails(_maps_args(maps_files), capsys)
    assert f"{maps_files / 'boxes.json'} image 1: box [0, 0, 3] has 3 numbers, need 4" in err


def test_nan_box_in_json(maps_files, capsys):
    (maps_files / "boxes.json").write_text('{"boxes": [[[NaN, 10, 19, 19]], [[0, 0, 3, 3]]]}')
    err = _main_fails(_maps_args(maps_files), capsys)
    assert "image 0: box [nan, 10, 19, 19] holds nan" in err


def test_broken_json_names_the_file(maps_files, capsys):
    (maps_files / "boxes.json").write_text('{"boxes": [[[1, 1, 5, 5]], ')
    err = _main_fails(_maps_args(maps_files), capsys)
    assert f"{maps_files / 'boxes.json'}: not valid JSON" in err and '{"boxes"' in err


def test_float_masks_say_what_masks_must_be(maps_files, capsys):
    np.savez(maps_files / "masks.npz", masks=np.zeros((2, 8, 8), np.float32))
    err = _main_fails(_maps_args(maps_files, masks="masks.npz"), capsys)
    assert f"{maps_files / 'masks.npz'}: masks are float32; masks must be uint8 with 1 = object" in err


def test_zero_255_masks_are_not_taken_as_all_ignore(maps_files, capsys):
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[:, 2:5, 2:5] = 255
    np.savez(maps_files / "masks.npz", masks=masks)
    err = _main_fails(_maps_args(maps_files, masks="masks.npz"), capsys)
    assert "only 0 and 255" in err and "divided by 255" in err
    masks[1, 0, 0] = 7
    masks[0, 0, 0] = 1
    np.savez(maps_files / "masks.npz", masks=masks)
    err = _main_fails(_maps_args(maps_files, masks="masks.npz"), capsys)
    assert "image 1: mask value 7 is not 0" in err


def test_good_files_still_score(maps_files, tmp_path):
    from downstream.localization.cli import main

    masks = np.zeros((2, 8, 8), np.uint8)
    masks[:, 1:6, 1:6] = 1
    np.savez(maps_files / "masks.npz", masks=masks)
    main([*_maps_args(maps_files, masks="masks.npz"), "--output", str(tmp_path / "o.json"), "progress=false"])
    res = json.loads((tmp_path / "o.json").read_text())
    assert {"MaxBoxAccV2", "PxAP", "CorLoc"} <= set(res)


def test_save_maps_with_own_size_images_is_refused_at_parse_time():
    from downstream.localization.cli import LocalizationConfig
    from pretrain.configuration import ConfigError, load_config

    with pytest.raises(ConfigError, match="save_maps needs maps of one size.*data.geometry=square"):
        load_config(LocalizationConfig, None, ["data.format=voc", "save_maps=m.npz"])
    load_config(LocalizationConfig, None, ["data.format=voc", "save_maps=m.npz", "data.geometry=square"])
