"""The published settings, key for key, against numbers restated from the reference configs.

Sources (restated by hand, not copied): yolish/multi-scene-pose-transformer ``7Scenes_config.json``
and ``CambridgeLandmarks_config.json`` (section "ems-transposenet") and ``util/utils.py``
(transforms); dlalth557/ActMST ``7Scenes_config.json`` and ``CambridgeLandmarks_config.json``
(same section) and its ``util/utils.py``. A comment names the key behind each number.
"""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from downstream.pose.config import PoseConfig
from pretrain.configuration import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "downstream" / "pose"

COMMON = {  # the same in all four published configs
    "data.image_size": 224,  # utils.py: RandomCrop(224), CenterCrop(224)
    "data.transform": "ms_transformer",
    "data.resize": 256,  # utils.py: Resize(256)
    "data.color_jitter": [0.5, 0.5, 0.5, 0.2],  # utils.py: ColorJitter(0.5, 0.5, 0.5, 0.2)
    "head.dim": 256,  # "hidden_dim": 256
    "head.ffn": 256,  # "dim_feedforward": 256
    "head.dropout": 0.1,  # "dropout": 0.1
    "head.heads": 8,  # ActMST "nhead": 8; MS-T writes "nheads": 4, which transformer.py never reads (default 8)
    "head.enc_layers_x": 6,  # "num_t_encoder_layers": 6
    "head.dec_layers_x": 6,  # "num_t_decoder_layers": 6
    "head.pos_table": "shared",  # backbone.py Joiner: one position embedding for both levels
    "head.init": "ms_transformer",
    "head.learn_loss_weights": True,  # "learnable": true
    "optim.lr": 1e-4,  # "lr": 1e-4
    "optim.eps": 1e-10,  # "eps": 1e-10
    "optim.weight_decay": 1e-4,  # "weight_decay": 1e-4
    "optim.batch_size": 8,  # "batch_size": 8
    "optim.gamma": 0.1,  # "lr_scheduler_gamma": 0.1
    "finetune": True,  # "freeze": false (the backbone is trained too, same Adam)
    "optim.backbone_lr": 1e-4,  # one lr for all parameters
}
PUBLISHED = {
    "ms_transformer_7scenes": {  # MS-T 7Scenes_config.json
        "head.enc_layers_q": 4, "head.dec_layers_q": 4,  # "num_rot_encoder_layers": 4, "num_rot_decoder_layers": 4
        "head.pos_encoding": "learned", "head.qka_weight": 0.0,  # no "learnable_pos" / "lambda_aux" keys
        "head.setting": "indoor",  # "s_x": 0.0, "s_q": -3.0
        "optim.epochs": 30, "optim.lr_step_epochs": 10,  # "n_epochs": 30, "lr_scheduler_step_size": 10
        "data.augment": True, "data.equalize_scenes": False,  # no "no_augment"; "equalize_scenes": false
        "data.num_workers": 4,  # "n_workers": 4
    },
    "ms_transformer_cambridge": {  # MS-T CambridgeLandmarks_config.json
        "head.enc_layers_q": 6, "head.dec_layers_q": 6,  # "num_rot_encoder_layers": 6, "num_rot_decoder_layers": 6
        "head.pos_encoding": "learned", "head.qka_weight": 0.0,
        "head.setting": "outdoor",  # "s_x": -3.0, "s_q": -6.5
        "optim.epochs": 600, "optim.lr_step_epochs": 200,  # "n_epochs": 600, "lr_scheduler_step_size": 200
        "data.augment": False, "data.equalize_scenes": True,  # "no_augment": true, "equalize_scenes": true
        "data.num_workers": 4,
    },
    "actmst_7scenes": {  # ActMST 7Scenes_config.json
        "head.enc_layers_q": 6, "head.dec_layers_q": 6,  # "num_rot_encoder_layers": 6, "num_rot_decoder_layers": 6
        "head.pos_encoding": "sine", "head.qka_weight": 0.1,  # "learnable_pos": false, "lambda_aux": 0.1
        "head.setting": "indoor",  # "s_x": 0.0, "s_q": -3.0
        "optim.epochs": 30, "optim.lr_step_epochs": 10,  # "n_epochs": 30, "lr_scheduler_step_size": 10
        "data.augment": True, "data.equalize_scenes": False,
        "data.num_workers": 8,  # "n_workers": 8
    },
    "actmst_cambridge": {  # ActMST CambridgeLandmarks_config.json
        "head.enc_layers_q": 6, "head.dec_layers_q": 6,
        "head.pos_encoding": "sine", "head.qka_weight": 0.1,
        "head.setting": "outdoor",  # "s_x": -3.0, "s_q": -6.5
        "optim.epochs": 500, "optim.lr_step_epochs": 200,  # "n_epochs": 500, "lr_scheduler_step_size": 200
        "data.augment": False, "data.equalize_scenes": True,  # "no_augment": true, "equalize_scenes": true
        "data.num_workers": 8,
    },
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_setting_matches_the_published_config_key_for_key(name):
    cfg = load_config(PoseConfig, str(CONFIGS / f"{name}.yaml"))
    want = {**COMMON, **PUBLISHED[name]}
    got = {key: OmegaConf.select(cfg, key) for key in want}
    got = {k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v) for k, v in got.items()}
    assert got == want


def test_every_setting_file_is_checked_and_loss_inits_are_the_published_ones():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(PUBLISHED)
    from downstream.pose.losses import LOSS_INIT

    assert LOSS_INIT == {"indoor": (0.0, -3.0), "outdoor": (-3.0, -6.5)}  # "s_x", "s_q" of the two datasets


def test_defaults_are_ms_transformer_7scenes_apart_from_the_frozen_probe():
    cfg = load_config(PoseConfig)
    want = {**COMMON, **PUBLISHED["ms_transformer_7scenes"], "finetune": False, "optim.backbone_lr": 1e-5,
            "data.num_workers": 0}
    got = {key: OmegaConf.select(cfg, key) for key in want}
    got = {k: (OmegaConf.to_container(v) if OmegaConf.is_config(v) else v) for k, v in got.items()}
    assert got == want


@pytest.mark.parametrize("override, words", [
    ("data.transform=ms_transformr", "did you mean 'ms_transformer'"),
    ("head.pos_table=sharde", "choose one of shared, per_branch"),
    ("head.init=xavier", "choose one of ms_transformer, xavier_all"),
    ("data.resize=200", "data.resize=200 < data.image_size=224"),
    ("data.color_jitter=[0.5,0.5,0.5,0.7]", "hue <= 0.5"),
])
def test_bad_input_settings_fail_at_parse_time(override, words):
    with pytest.raises(ConfigError, match=words):
        load_config(PoseConfig, None, [override])
