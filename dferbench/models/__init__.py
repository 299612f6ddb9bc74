"""Model blocks shared by methods: CLIP loading, the temporal transformer, the prompt
learner, the frozen-feature cache, text classifiers, precision helpers, safe checkpoint
reading.

Submodules are imported explicitly (``from dferbench.models.clip import create_clip``);
importing :mod:`dferbench.models.clip` registers the core's random tiny open_clip config.
"""
