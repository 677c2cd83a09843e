"""Multi-scene absolute camera pose regression on a pretrained ViT (MS-Transformer head).

Modules: :mod:`render` (pybullet rooms -> CSV + 7Scenes files), :mod:`data` (the MS-Transformer
CSV), :mod:`geometry` (quaternions, cameras), :mod:`pos_encoding`, :mod:`transformer`,
:mod:`model`, :mod:`losses`, :mod:`metrics`, :mod:`tokens` (backbone tokens, cached),
:mod:`config`, :mod:`checkpoints`, :mod:`train`, :mod:`test`, :mod:`pictures`.
See docs/pose.md.
"""
