"""Training: codec pre-training (``pretrain``), Diffusion-DPO post-training (the subpackage ``dpo``) and its online preference buffer."""
