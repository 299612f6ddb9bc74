"""Face detectors for ``dferbench predict``: OpenCV's Haar cascade, MTCNN, and ``none``.

Each detector has ``detect(frames uint8 [N, H, W, 3]) -> list[list[Box]]``
(:class:`dferbench.predict.detection.FaceDetector`); a factory ``factory(device="cpu")``
builds it. ``haar`` needs only opencv-python-headless (a dependency of dferbench);
``mtcnn`` needs facenet-pytorch, which cannot be a plain dependency or extra (it pins
torch < 2.3): see :data:`dferbench_plugins.faces.mtcnn.INSTALL`.
"""

from __future__ import annotations

from dferbench import hookimpl


@hookimpl
def dferbench_register_face_detectors(register):
    from dferbench_plugins.faces.haar import HaarDetector
    from dferbench_plugins.faces.mtcnn import MTCNNDetector
    from dferbench_plugins.faces.whole_frame import WholeFrame

    register("haar", HaarDetector,
             description="OpenCV's Haar cascade for frontal faces (opencv-python-headless); fast, frontal faces only")
    register("mtcnn", MTCNNDetector,
             description="MTCNN (facenet-pytorch, installed apart); finds turned, tilted and small faces")
    register("none", WholeFrame, description="no detection: every frame is already a face crop")
