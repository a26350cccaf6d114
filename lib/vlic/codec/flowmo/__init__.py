"""FlowMo, the paper profile's base model, one concept a module.

``layers`` (its double-stream transformer), ``model`` (config, model, LFQ, sampler, strict loading of the released
checkpoints), ``check`` (golden-fixture proof), ``checkpoint`` (released .pth or FlowMo + fitted token prior,
fingerprint), ``codec`` (FlowMo tokens ⇄ .vlic, MultiDiffusion tiles), ``download`` (released weights + sha256 lock),
``cli`` (``vlic flowmo check``, ``vlic models download``).
"""
