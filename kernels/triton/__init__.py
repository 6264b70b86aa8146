"""Triton kernels of the noise engine (ChaCha20, discrete Laplace, fused IdentityDP)."""
