"""Model building blocks: CLIP backbones, the DFER-CLIP temporal model and prompt learner.

Submodules are imported explicitly (``from dferbench_plugins.dferclip.network import DFERCLIP``);
importing :mod:`dferbench.models.clip` registers dferbench's tiny open_clip configs.
"""
