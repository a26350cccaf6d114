"""Low-level machine vision under compression (LL-ICM, chapter 07): degraded inputs, restoration task models and
rate–perception optimisation.

* :mod:`.degradations` — synthetic degradations of clean photos (noise, Gaussian and motion blur, rain, haze, low
  light, JPEG artefacts), seeded, the clean original kept as ground truth;
* :mod:`.classical` — classical restorers from scikit-image / scipy as reference points;
* :mod:`.restorer` — a small residual U-Net (optionally FiLM-conditioned) and the degradation-aware controller on
  frozen EfficientNet-Lite0 features (the offline stand-in for DA-CLIP);
* :mod:`.training` — paired crop pools, restorer/controller training, and the RDO / RPO fine-tuning of codec and
  restorer (:func:`~.training.rpo_loss`);
* :mod:`.study` — the chapter's measurements: real bitstreams, restored photos, FR/NR metrics, BD-rates.

Layering: imports from ``vlic.codec``, ``vlic.perception``, ``vlic.eval``; nothing below imports this package.
"""
