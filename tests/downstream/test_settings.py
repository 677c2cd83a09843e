"""Every evaluator's config: the shared run settings, and every enumerated value checked at parse time."""

from __future__ import annotations

import dataclasses

import pytest

from downstream.features.cli import FeaturesConfig
from downstream.knn.cli import KnnConfig
from downstream.linear.cli import LinearConfig
from downstream.localization.cli import LocalizationConfig
from downstream.pose.config import PoseConfig
from downstream.pose.test import PoseTestConfig
from downstream.robustness.cli import RobustnessConfig
from downstream.settings import EvalSettings
from pretrain.configuration import ConfigError, choices_of, load_config

SCHEMAS = [KnnConfig, LinearConfig, FeaturesConfig, LocalizationConfig, RobustnessConfig, PoseConfig, PoseTestConfig]
CHOICES = [(schema, key, valid) for schema in SCHEMAS for key, valid in choices_of(schema).items()]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_every_evaluator_config_extends_the_shared_settings(schema):
    assert issubclass(schema, EvalSettings)
    names = {f.name for f in dataclasses.fields(schema)}
    assert {"output", "tensorboard", "device", "amp", "progress"} <= names


@pytest.mark.parametrize("schema, key, valid", CHOICES, ids=[f"{s.__name__}:{k}" for s, k, _ in CHOICES])
def test_a_wrong_value_names_the_valid_ones_and_the_closest(schema, key, valid):
    with pytest.raises(ConfigError, match="is not a valid value") as info:
        load_config(schema, None, [f"{key}={valid[-1]}x"])
    assert f"did you mean {valid[-1]!r}" in str(info.value) and ", ".join(valid) in str(info.value)


@pytest.mark.parametrize("schema, key", [(KnnConfig, "backend"), (KnnConfig, "kind"), (LinearConfig, "mode"),
                                         (LocalizationConfig, "source"), (LocalizationConfig, "data.format"),
                                         (RobustnessConfig, "head"), (PoseConfig, "head.pos_encoding"),
                                         (PoseConfig, "head.setting"), (KnnConfig, "train_data.dataset"),
                                         (FeaturesConfig, "model.which"), (FeaturesConfig, "amp"),
                                         (LinearConfig, "device"), (KnnConfig, "nonfinite")])
def test_the_issue_s_options_are_checked_choices(schema, key):
    assert key in choices_of(schema)


@pytest.mark.parametrize("schema, overrides, message", [
    (LocalizationConfig, ["heads=middle"], "head index"),
    (LocalizationConfig, ["maps=m.npz"], "both maps"),
    (LocalizationConfig, ["amp=bf16"], "float32"),
    (RobustnessConfig, ["masked_ratios=[1.5]"], r"\[0, 1\]"),
    (RobustnessConfig, ["data.variants=[original,mixed_rnd]"], "mixed_rnd"),
    (RobustnessConfig, ["head=in1k"], "in1k_head"),
    (KnnConfig, ["train_features=a.npz"], "both"),
    (LinearConfig, ["variants=[cls,clss]"], "clss"),
    (LinearConfig, ["train_features=a.npz", "test_features=b.npz", "mode=augmented"], "needs images"),
    (PoseConfig, ["amp=fp16"], "float32"),
])
def test_cross_field_mistakes_fail_at_parse_time(schema, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(schema, None, overrides)


def test_localization_heads_parse_once_into_a_typed_value():
    from downstream.localization.maps import parse_heads

    assert parse_heads("mean") == "mean" and parse_heads("best") == "best"
    assert parse_heads("3") == 3 and parse_heads("-1") == -1 and parse_heads(2) == 2
    with pytest.raises(ValueError, match="head index"):
        parse_heads("first")


def test_commands_fail_before_reading_their_files(tmp_path, capsys):
    from downstream.knn.cli import main as knn_main
    from downstream.localization.cli import main as loc_main

    missing = tmp_path / "never_read"
    for main, args in ((loc_main, ["--maps", f"{missing}.npz", "--boxes", f"{missing}.json", "source=clss"]),
                       (knn_main, ["--train-features", f"{missing}.npz", "--test-features", f"{missing}.npz",
                                   "backend=faiss_gpuu"])):
        with pytest.raises(SystemExit) as info:
            main(args)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("config error: ") and "did you mean" in err
