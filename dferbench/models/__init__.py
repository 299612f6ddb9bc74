"""Shared model blocks: CLIP backbones, the temporal transformer, the prompt learner, the
frozen-feature cache, precision helpers. Plugins reach them through the public API
(``from dferbench import create_clip, build_temporal_model``); importing
:mod:`dferbench.models.clip` registers dferbench's tiny open_clip configs.
"""
