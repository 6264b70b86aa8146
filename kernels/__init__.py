"""Kernel sources shipped with identitydp_fast: Triton modules (kernels/triton) and CUDA
device code (kernels/cuda, kernels/common) also used by NVRTC. Installed as
``identitydp_fast.kernels``."""
