"""Plain-PyTorch reference implementation of every stage: the oracle for the kernels.

One module per op (``chacha20``, ``discrete_laplace``, ``identity_dp``), each named
like its kernels, tests and benchmark. It imports no kernel; tests, benchmarks and
training import it. Readable first.
"""
from . import chacha20, discrete_laplace, identity_dp

__all__ = ["chacha20", "discrete_laplace", "identity_dp"]
