"""Typed config: defaults, YAML overrides, key=value overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ReadonlyConfigError

from pretrain.config import PretrainConfig

from pretrain.configuration import ConfigError, choices_of, load_config, parse_args, save_config

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
    with pytest.raises(ReadonlyConfigError):
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


# ----------------------------------------------------------------------------- values checked at parse time


def test_a_misspelt_choice_fails_at_parse_time_naming_the_valid_values():
    with pytest.raises(ConfigError, match=r"mask.strategy='atmask_high'.*did you mean 'attmask_high'.*"
                                          r"choose one of attmask_high, none, random, block, attmask_hint, attmask_low"):
        load_config(PretrainConfig, None, ["mask.strategy=atmask_high"])


@pytest.mark.parametrize("key", sorted(choices_of(PretrainConfig)))
def test_every_choice_field_rejects_a_bad_value(key):
    valid = choices_of(PretrainConfig)[key]
    with pytest.raises(ConfigError, match=rf"{key}='bogus'.*choose one of {', '.join(valid)}"):
        load_config(PretrainConfig, None, [f"{key}=bogus"])
    load_config(PretrainConfig, None, [f"{key}={valid[-1]}"] + (["mask.strategy=none"] if valid[-1] == "dino" else [])
                + (["data.dataset=fashion_mnist"] if valid[-1] in ("batched", "train_fit") else [])
                + (["data.ffcv_path=x.beton"] if valid[-1] == "ffcv" else [])
                + (["head.shared_head=false"] if valid[-1] == "separate" else []))


def test_the_choice_lists_match_what_the_packages_accept():
    from pretrain.masking import STRATEGIES
    from pretrain.models.attention import ATTENTION_PATHS, KEY_VARIANTS
    from pretrain.models.pooling import POOLINGS, SIMPOOL_BETAS
    from pretrain.models.pos_embed import POS_EMBED_INTERP
    from pretrain.models.teacher_student import PATCH_HEAD_LAYOUTS

    c = choices_of(PretrainConfig)
    assert set(c["model.attention"]) == set(ATTENTION_PATHS)
    assert set(c["model.pos_embed_interp"]) == set(POS_EMBED_INTERP)
    assert set(c["model.simpool_beta"]) == set(SIMPOOL_BETAS)
    assert set(c["head.patch_head_layout"]) == set(PATCH_HEAD_LAYOUTS)
    assert set(c["mask.strategy"]) == set(STRATEGIES)
    assert set(c["model.pooling"]) == set(POOLINGS)
    assert set(c["model.key_variant"]) == set(KEY_VARIANTS)


@pytest.mark.parametrize("overrides,message", [
    (["data.batch_size=0"], r"data.batch_size=0 must be > 0"),
    (["data.batch_size=-4"], r"data.batch_size=-4 must be > 0"),
    (["run.device=gpu"], r"run.device='gpu'.*choose one of auto, cpu, cuda"),
    (["model.patch_size=14"], r"data.local_size=96 is not a multiple of model.patch_size=14"),
    (["model.patch_size=15"], r"data.global_size=224 is not a multiple of model.patch_size=15"),
    (["model.name=vit_smal"], r"model.name='vit_smal' is not a registered model: did you mean 'vit_small'"),
    (["head.patch_out_dim=4096"], r"head.shared_head=true needs head.patch_out_dim == head.out_dim"),
    (["data.loader=ffcv"], r"data.loader=ffcv needs data.ffcv_path"),
    (["data.colour_on_device=true"], r"colour_on_device=true is the FFCV GPU colour path"),
    (["loss.method=dino"], r"mask.strategy=none"),
])
def test_bad_values_are_config_errors_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PretrainConfig, None, overrides)


def test_separate_patch_head_may_have_its_own_size():
    cfg = load_config(PretrainConfig, None, ["head.patch_out_dim=4096", "head.shared_head=false"])
    assert cfg.head.patch_out_dim == 4096


def test_help_points_to_the_keys_and_help_config_lists_them(capsys):
    with pytest.raises(SystemExit):
        parse_args(PretrainConfig, ["--help"])
    assert "--help-config" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        parse_args(PretrainConfig, ["--help-config"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "mask.strategy='attmask_high'  (one of: attmask_high, none, random, block, attmask_hint, attmask_low)" in text
    assert "data.n_global=2" in text and "optim.schedule=" in text
    assert len(text.splitlines()) == len([k for k in text.splitlines() if "=" in k])


@pytest.mark.parametrize("override,message", [
    ("data.blur_p=[1.0,0.1]", r"data.blur_p=\[1.0, 0.1\] needs 3 numbers"),
    ("data.solarize_p=1.5", r"data.solarize_p=1.5 is a probability"),
    ("data.blur_p=[1.0,-0.1,0.5]", r"data.blur_p\[1\]=-0.1 is a probability"),
    ("data.blur_sigma=[2.0,0.5]", r"data.blur_sigma=\[2.0, 0.5\] must satisfy 0 < low <= high"),
    ("data.local_scale=[0,0.3]", r"data.local_scale=\[0.0, 0.3\] must satisfy"),
    ("data.color_jitter=[0.4,0.4,0.2,0.9]", r"hue <= 0.5"),
])
def test_bad_augmentation_values_fail_when_the_config_is_read(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PretrainConfig, None, [override])


# --- issue 22 (nothing silently wrong, round 2): items 3 and 6 -------------------------------------


def test_a_duplicated_section_names_the_key_and_both_lines(tmp_path):
    yml = tmp_path / "twice.yaml"
    yml.write_text("optim:\n  lr: 0.001\nmodel:\n  pooling: simpool\noptim:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: key 'optim' is given twice \(line 1 and line 5\)"):
        load_config(PretrainConfig, str(yml))


def test_a_duplicated_key_inside_a_section_names_both_lines(tmp_path):
    yml = tmp_path / "lr.yaml"
    yml.write_text("optim:\n  lr: 0.001\n  epochs: 3\n  lr: 0.002\n")
    with pytest.raises(ConfigError, match=r"key 'lr' is given twice \(line 2 and line 4\)"):
        load_config(PretrainConfig, str(yml))


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    yml = tmp_path / "broken.yaml"
    yml.write_text("optim:\n  lr: 0.1\n bad: 2\n")
    with pytest.raises(ConfigError, match=r"config file .*broken.yaml: YAML syntax error at line 3, column 2: "):
        load_config(PretrainConfig, str(yml))
    with pytest.raises(ConfigError, match=r"override 'data.global_scale=\[0.3,': YAML syntax error at line 1"):
        load_config(PretrainConfig, None, ["data.global_scale=[0.3,"])


def test_a_scalar_where_a_section_belongs_names_the_section(tmp_path):
    yml = tmp_path / "scalar.yaml"
    yml.write_text("model: vit_pico\n")
    with pytest.raises(ConfigError, match=r"'model' in config file .*scalar.yaml is a section: it must be a "
                                          r"mapping .*'model.name=\.\.\.'.*not 'vit_pico'"):
        load_config(PretrainConfig, str(yml))
    with pytest.raises(ConfigError, match=r"'optim' in override 'optim=3' is a section"):
        load_config(PretrainConfig, None, ["optim=3"])


def test_yaml_errors_on_the_command_line_are_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    yml = tmp_path / "broken.yaml"
    yml.write_text("optim:\n  lr: [0.1\n")
    proc = subprocess.run([sys.executable, "-m", "pretrain.train", "--config", str(yml)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"config error: config file {yml}: YAML syntax error at line 3, column 1")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
