"""Machine vision on decoded images (chapter 06, Diff-ICMH's question): do machines still see what the original
showed after a codec has been through it?

One module per task, each with real pre-trained models that install offline and an ``availability()`` that returns
None or a one-line reason (a missing package becomes a recorded skip, never a crash):

* :mod:`~vlic.machine.classification` — EfficientNet-Lite0 (ImageNet-1k): top-1 / top-5 agreement of the decoded
  image's prediction with the original's, KL divergence of the class distributions;
* :mod:`~vlic.machine.retrieval` — decoded patches as queries against a gallery of original patches (pooled
  EfficientNet-Lite0 features): recall@1 and mean average precision;
* :mod:`~vlic.machine.ocr` — PP-OCR (``rapidocr-onnxruntime``): character error rate against the **true** string
  rendered into photographs (matplotlib's DejaVu fonts) at several sizes;
* :mod:`~vlic.machine.faces` — MediaPipe BlazeFace (AP@0.5 against the detections on the original) and selfie
  segmentation (mask IoU).

:mod:`~vlic.machine.images` builds the chapter's image set, :mod:`~vlic.machine.suite` scores every reconstruction
of :class:`vlic.eval.benchmark.Reconstructions` with every available task. This package sits above ``vlic.eval``;
nothing below imports it.
"""

from __future__ import annotations


def availability() -> dict[str, str | None]:
    """Task → None (runs here) or the reason it cannot."""
    from vlic.machine import classification, faces, ocr, retrieval

    return {"classification": classification.availability(), "retrieval": retrieval.availability(),
            "ocr": ocr.availability(), "faces": faces.availability(), "person_mask": faces.availability()}
