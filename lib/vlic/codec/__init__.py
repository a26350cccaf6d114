"""The diffusion-autoencoder image codec: FSQ latent, rectified-flow decoder, AR prior + range coding, tiling.

Modules, one concept each: ``fsq`` (quantizer), ``autoencoder`` (encoder, latent decoder, flow network, config),
``sampling`` (Euler sampler, CFG), ``tiling`` (MultiDiffusion), ``prior`` (causal transformer over tokens),
``bitstream`` (.vlic container, range coding), ``checkpoint`` (safetensors), ``image_codec`` (pixels ⇄ bytes),
``quality`` (PSNR, MS-SSIM), ``cli`` (``vlic compress | decompress | info``).

FlowMo, the paper profile's base model, is the subpackage ``flowmo`` (transformer, model and sampler, golden-fixture
proof, checkpoints, codec, download, CLI).

Both families behind one door: ``families`` (load / wrap / save a checkpoint of either kind; what every chapter and
the CLI use) and ``flow_model`` (the calls post-training and held-out scoring ask of either family's networks).
"""
