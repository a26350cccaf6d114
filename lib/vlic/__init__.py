"""vlic — the library behind the VLIC compendium (VLM-judged, human-aligned image compression).

Notebooks in ``notebooks/`` tell the story; this package holds the code they share, with tests in ``tests/``.
Layers, lowest first (``tests/test_layers.py`` enforces that imports point down):

* ``numerics`` ``files`` ``fetch`` ``config`` ``stats`` ``console`` … — plumbing shared by everything;
* ``images`` — reading photographs, pixels ⇄ tensors;
* ``codec`` (the learned codecs, FlowMo, the Pillow baselines) and ``perception`` (pre-trained networks that install
  offline);
* ``data`` — packaged photographs, splits, crops, 2AFC sets;
* ``judges`` — VLM and metric judges, ensembles, reward combinations;
* ``eval`` — metrics, the rate–distortion benchmark, held-out win-rates, Elo, the human study;
* ``training`` — pre-training, Diffusion-DPO, reward ablations;
* ``widgets`` and ``cli`` on top.
"""

__version__ = "0.1.0"
