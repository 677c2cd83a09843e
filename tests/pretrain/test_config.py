"""Typed config: defaults, YAML overrides, key=value overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pretrain.config import ConfigError, PretrainConfig, load_config, parse_args, save_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_yaml_and_cli_layer_in_order(tmp_path):
    yml = tmp_path / "c.yaml"
    yml.write_text("optim:\n  lr: 0.001\nmodel:\n  pooling: simpool\n")
    cfg = load_config(PretrainConfig, str(yml), ["optim.lr=0.002", "data.global_scale=[0.3,1.0]"])
    assert cfg.optim.lr == 0.002  # command line beats YAML
    assert cfg.model.pooling == "simpool"  # YAML beats default
    assert cfg.optim.epochs == 100  # default kept
    assert list(cfg.data.global_scale) == [0.3, 1.0]


def test_unknown_key_names_it_and_suggests(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'.*did you mean 'optim.lr'"):
        load_config(PretrainConfig, None, ["optim.lrr=1"])
    yml = tmp_path / "typo.yaml"
    yml.write_text("mask:\n  stratgy: random\n")
    with pytest.raises(ConfigError, match=r"'mask.stratgy' in .*typo.yaml.*'mask.strategy'"):
        load_config(PretrainConfig, str(yml))


def test_unknown_section_lists_sections():
    with pytest.raises(ConfigError, match=r"'modle.name'.*'model.name'.*valid keys here: model, head"):
        load_config(PretrainConfig, None, ["modle.name=x"])


def test_wrong_type_names_key_value_and_type():
    with pytest.raises(ConfigError, match=r"'optim.lr'.*'abc'.*Float"):
        load_config(PretrainConfig, None, ["optim.lr=abc"])
    with pytest.raises(ConfigError, match=r"'data.batch_size'.*'many'.*Integer"):
        load_config(PretrainConfig, None, ["data.batch_size=many"])


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(PretrainConfig, None, ["optim.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(PretrainConfig, "configs/nope.yaml")


def test_config_is_read_only():
    cfg = load_config(PretrainConfig)
    with pytest.raises(Exception):
        cfg.optim.lr = 1.0


def test_saved_config_reloads_to_the_same(tmp_path):
    cfg = load_config(PretrainConfig, None, ["mask.strategy=attmask_hint", "run.seed=3"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(PretrainConfig, str(path))
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "pretrain").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    cfg = load_config(PretrainConfig, str(path))
    assert cfg.loss.method in ("ibot", "dino")


def test_parse_args_exits_with_the_message(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(PretrainConfig, ["optim.lrr=1"])
    assert exc.value.code == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
