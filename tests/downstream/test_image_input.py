"""One schema for how images reach the backbone, in every evaluator's data section (issue 20)."""

from __future__ import annotations

import typing

import pytest

from downstream.image_input import ImageInput
from pretrain.configuration import ConfigError, load_config


def _configs():
    from downstream.features.cli import FeaturesConfig
    from downstream.knn.cli import KnnConfig
    from downstream.linear.cli import LinearConfig
    from downstream.localization.cli import LocalizationConfig
    from downstream.pose.config import PoseConfig
    from downstream.robustness.cli import RobustnessConfig

    return {"features": (FeaturesConfig, "data"), "knn": (KnnConfig, "train_data"), "linear": (LinearConfig, "train_data"),
            "localization": (LocalizationConfig, "data"), "robustness": (RobustnessConfig, "data"),
            "pose": (PoseConfig, "data")}


@pytest.mark.parametrize("name", ["features", "knn", "linear", "localization", "robustness", "pose"])
def test_every_evaluator_reads_the_same_image_keys(name):
    cls, section = _configs()[name]
    cfg = load_config(cls, None, [f"{section}.image_size=112", f"{section}.num_workers=0",
                                  f"{section}.mean=[0.5,0.5,0.5]", f"{section}.std=[0.25,0.25,0.25]"])
    data = getattr(cfg, section)
    assert issubclass(typing.get_type_hints(cls)[section], ImageInput)
    assert (data.image_size, data.num_workers, data.mean, data.std) == (112, 0, [0.5] * 3, [0.25] * 3)
    with pytest.raises(ConfigError, match="workers"):  # the old pose spelling is nobody's key
        load_config(cls, None, [f"{section}.workers=0"])
