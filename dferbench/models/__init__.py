"""Model blocks shared by methods: CLIP loading, the temporal transformer, the prompt
learner, the frozen-feature cache, text classifiers, precision helpers, safe checkpoint
reading. Plugins reach them through the public API (``from dferbench import create_clip,
build_temporal_model``); importing :mod:`dferbench.models.clip` registers the core's random
tiny open_clip config.
"""
