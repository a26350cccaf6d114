"""The diffusion-autoencoder image codec: FSQ latent, rectified-flow decoder, AR prior + range coding, tiling.

Modules, one concept each: ``fsq`` (quantizer), ``autoencoder`` (encoder, latent decoder, flow network, config),
``sampling`` (Euler sampler, CFG), ``tiling`` (MultiDiffusion), ``prior`` (causal transformer over tokens),
``bitstream`` (.vlic container, range coding), ``checkpoint`` (safetensors), ``image_codec`` (pixels ⇄ bytes),
``quality`` (PSNR, MS-SSIM), ``cli`` (``vlic compress | decompress | info``).

FlowMo, the paper profile's base model: ``flowmo_layers`` (its double-stream transformer), ``flowmo`` (config, model,
LFQ, sampler, strict loading of the released checkpoints), ``flowmo_check`` (golden-fixture proof),
``flowmo_checkpoint`` (released .pth or FlowMo + fitted token prior, fingerprint),
``flowmo_codec`` (FlowMo tokens ⇄ .vlic, MultiDiffusion tiles), ``flowmo_download`` (released weights + sha256 lock),
``flowmo_cli`` (``vlic flowmo check``, ``vlic models download``).

Both families behind one door: ``families`` (load / wrap / save a checkpoint of either kind; what every chapter and
the CLI use) and ``flow_model`` (the calls post-training and held-out scoring ask of either family's networks).
"""
