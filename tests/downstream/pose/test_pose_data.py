"""The MS-Transformer CSV reader on a 7Scenes-shaped fixture, and its errors."""

import cv2
import numpy as np
import pytest

from downstream.pose.data import (
    PoseDataError,
    open_split,
    read_pose_csv,
    scene_ids,
    scene_names,
)

HEADER = "scene,split,seq,img_path,t1,t2,t3,q1,q2,q3,q4\n"
ROWS = [  # 7Scenes layout: <scene>/<seq>/frame-XXXXXX.color.png, positions in metres, q1 = w
    "heads,train,seq-02,heads/seq-02/frame-000000.color.png,0.1087,-0.1937,0.1289,0.8732,0.2616,-0.3716,0.1762",
    "chess,train,seq-01,chess/seq-01/frame-000000.color.png,0.0305,-0.0101,0.1347,1.0,0.0,0.0,0.0",
    "chess,test,seq-03,chess/seq-03/frame-000010.color.png,-0.5,0.25,1.5,0.0,0.0,0.7071068,0.7071068",
    "fire,train,seq-01,fire/seq-01/frame-000005.color.png,1.0,2.0,3.0,0.5,0.5,0.5,0.5",
]


def make_fixture(tmp_path, rows=ROWS, header=HEADER, images=True):
    (tmp_path / "poses.csv").write_text(header + "\n".join(rows) + "\n")
    if images:
        for i, row in enumerate(rows):
            img = np.full((48, 64, 3), 40 * i, np.uint8)
            img[:, :, 2] = 200  # red in RGB after cv2's BGR
            path = tmp_path / row.split(",")[3]
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), img)
    return tmp_path / "poses.csv"


def test_reads_7scenes_fixture(tmp_path):
    make_fixture(tmp_path)
    train = open_split(tmp_path, "poses.csv", "train", image_size=16)
    assert train.names == ["chess", "fire", "heads"] and train.scene.tolist() == [2, 0, 1]
    np.testing.assert_allclose(train.table.xyz[0], [0.1087, -0.1937, 0.1289], rtol=1e-6)
    assert abs(np.linalg.norm(train.table.quat[0]) - 1) < 1e-6 and train.table.line == [2, 3, 5]
    img, xyz, quat, scene = train[1]
    assert xyz.tolist() == pytest.approx([0.0305, -0.0101, 0.1347])
    assert img.shape == (3, 16, 16) and str(img.dtype) == "torch.uint8" and scene == 0
    assert img[0, 0, 0] == 200 and img[1, 0, 0] == 40 and quat.tolist() == [1.0, 0.0, 0.0, 0.0]
    test = open_split(tmp_path, "poses.csv", "test", image_size=16, names=train.names)
    assert len(test) == 1 and test.scene.tolist() == [0]
    assert len(read_pose_csv(tmp_path / "poses.csv")) == 4  # split "" keeps every row
    (tmp_path / "more.csv").write_text(HEADER + ROWS[1] + "\n")  # several CSVs, e.g. per-scene test files
    both = open_split(tmp_path, "poses.csv, more.csv", "train", image_size=8, names=train.names)
    assert len(both) == 4 and both.scene.tolist() == [2, 0, 1, 0] and both.table.line == [2, 3, 5, 2]
    gray = open_split(tmp_path, "poses.csv", "train", image_size=8, channels=1)
    assert gray[0][0].shape == (1, 8, 8)


@pytest.mark.parametrize("bad_row, words", [
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,0,0,0,0.9,0,0,0", ["line 2", "norm 0.9", "unit"]),
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,0,0,0,0,0,0,0", ["line 2", "norm 0", "zero"]),
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,0,x,0,1,0,0,0", ["line 2", "must be numbers"]),
])
def test_bad_quaternions_and_numbers_name_the_row(tmp_path, bad_row, words):
    make_fixture(tmp_path, [bad_row], images=False)
    with pytest.raises(PoseDataError) as err:
        read_pose_csv(tmp_path / "poses.csv")
    assert all(w in str(err.value) for w in words), str(err.value)


def test_missing_columns_missing_image_unknown_scene(tmp_path):
    make_fixture(tmp_path, [r.rsplit(",", 1)[0] for r in ROWS], header=HEADER.replace(",q4", ""), images=False)
    with pytest.raises(PoseDataError, match=r"missing column\(s\) q4 .*header must be scene,split"):
        read_pose_csv(tmp_path / "poses.csv")
    make_fixture(tmp_path)
    (tmp_path / ROWS[3].split(",")[3]).unlink()
    with pytest.raises(PoseDataError, match=r"line 5: image .*fire/seq-01/frame-000005.color.png does not exist"):
        open_split(tmp_path, "poses.csv", "train", 16)
    with pytest.raises(PoseDataError, match=r"line 4: scene 'chess' is not one the model was trained on \(fire, heads\)"):
        scene_ids(read_pose_csv(tmp_path / "poses.csv", "test"), ["fire", "heads"])
    with pytest.raises(PoseDataError, match=r"no rows with split='val' \(splits present: \['test', 'train'\]\)"):
        read_pose_csv(tmp_path / "poses.csv", "val")
    assert scene_names(read_pose_csv(tmp_path / "poses.csv")) == ["chess", "fire", "heads"]


@pytest.mark.parametrize("bad_row, words", [
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,nan,0,0,1,0,0,0",
     ["line 2, column t1", "position is nan", "not a finite number of metres", "fix the camera position"]),
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,0,0,-inf,1,0,0,0",
     ["line 2, column t3", "position is -inf"]),
    (",train,seq-01,chess/seq-01/frame-000000.color.png,0,0,0,1,0,0,0",
     ["line 2, column scene", "scene name is empty", "write the scene"]),
    ("  ,train,seq-01,chess/seq-01/frame-000000.color.png,0,0,0,1,0,0,0", ["line 2, column scene"]),
    ("chess,train,seq-01,chess/seq-01/frame-000000.color.png,0,0,0,1,nan,0,0", ["line 2, columns q1..q4", "norm nan"]),
])
def test_nonfinite_positions_and_empty_scenes_name_line_and_column(tmp_path, bad_row, words):
    make_fixture(tmp_path, [ROWS[1], bad_row], images=False)
    with pytest.raises(PoseDataError) as err:
        read_pose_csv(tmp_path / "poses.csv")
    msg = str(err.value).replace("line 3", "line 2")  # the bad row is the CSV's third line
    assert all(w in msg for w in words), msg
    assert ("quaternion" in msg) == ("q1..q4" in words[0]), msg  # a bad position is not called a quaternion problem


def test_cli_reports_a_bad_csv_in_one_line_with_exit_status_2(tmp_path, capsys):
    from downstream.pose import test as pose_test
    from downstream.pose import train as pose_train

    make_fixture(tmp_path, [ROWS[1].replace(",0.0305,", ",nan,")], images=False)
    args = [f"data.root={tmp_path}", "model.name=vit_pico", "model.patch_size=7", "data.image_size=28",
            f"output_dir={tmp_path / 'run'}", "progress=false"]
    with pytest.raises(SystemExit) as exc:
        pose_train.main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "poses.csv line 2, column t1: the position is nan" in err
    with pytest.raises(SystemExit) as exc:  # the test entry point the same way (here: no head file)
        pose_test.main([f"--head={tmp_path / 'missing.pt'}", f"data.root={tmp_path}"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: cannot read pose-head checkpoint")
