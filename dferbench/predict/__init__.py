"""Predict the expressions in a person's own video, window by window.

The pipeline (:func:`dferbench.predict.pipeline.predict_videos`):

1. open each input -- a video file, a folder of frames, or a folder of videos -- and
   learn its frame timestamps (:mod:`~dferbench.predict.video`);
2. detect faces in frames sampled a few times a second with a pluggable face detector,
   link the detections into tracks across frames by overlap and position, choose the
   main face (largest and most persistent) or keep every track, smooth each track's
   box and crop it square with a margin, as the datasets' face crops are cut
   (:mod:`~dferbench.predict.tracking`);
3. slide windows (length and stride in seconds) over each track and sample every
   window exactly as evaluation samples a test clip (:mod:`~dferbench.predict.windows`);
4. batch the windows through a *scorer* -- the trained model -- and write per-video
   timelines (JSON, CSV), a plot and optionally an annotated MP4
   (:mod:`~dferbench.predict.outputs`).

A scorer is any object with ``classes``, ``num_frames``, ``image_size`` and
``score(clips uint8 [N, T, H, W, 3]) -> probabilities [N, C]``
(:class:`~dferbench.predict.scorer.Scorer`); :class:`~dferbench.predict.scorer.ModuleScorer`
makes one from a torch network with evaluation's own test transform.
"""
