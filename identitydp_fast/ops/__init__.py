"""Backend dispatch for every op: one signature per op, implementations in
identitydp_fast/reference (torch), csrc + kernels/cuda (``_C``) and kernels/triton."""
from .chacha20 import chacha20_keystream
from .discrete_laplace import discrete_laplace
from .identity_dp import identity_dp

__all__ = ["chacha20_keystream", "discrete_laplace", "identity_dp"]
