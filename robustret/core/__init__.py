"""Layer 1, the foundation: contracts and checks, seed streams, registries, devices, verified
atomic files, cache keys, chunked inference, torchrun helpers, run logging, PSNR / SSIM.

May import: the standard library, numpy and torch only (never another robustret package, nor
``degradations`` or ``restoration``). Everything above builds on it.
"""
