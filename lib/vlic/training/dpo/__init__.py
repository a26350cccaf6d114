"""Diffusion-DPO post-training, one concept a module.

``loss`` (the rectified-flow Diffusion-DPO objective), ``trainer`` (policy, frozen reference, online preference
buffer judged concurrently, resumable checkpoints), ``setup`` (a chapter's parameters → codec, reward, config),
``launch`` (``accelerate launch -m vlic.training.dpo.launch``: the chapter's run on several GPUs), ``memory`` (FlowMo
post-training memory and GPU-hour estimate), ``seed_study`` (DPO and pre-training seed replicates, two-level
intervals, the oracle check).
"""
