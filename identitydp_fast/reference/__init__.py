"""Plain-PyTorch reference implementation of every stage: the oracle for the kernels.

It imports no kernel; tests, benchmarks and training import it. Readable first.
"""
from .chacha20 import chacha20_blocks, keystream
from .discrete_laplace import discrete_laplace
from .identity_dp import identity_dp

__all__ = ["chacha20_blocks", "keystream", "discrete_laplace", "identity_dp"]
