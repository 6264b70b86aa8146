"""Privacy: everything a privacy reviewer reads, in one folder (GUARANTEE.md states what
epsilon covers and what it does not).

* ``accounting``: the epsilon-IdentityDP Laplace mechanism's parameters and accounting
  (grid, sampler tables, effective epsilon and delta; ``MAX_EPSILON``);
* ``identity_dp``: the op's public API, ``IdentityDP`` -> ``IdentityDPResult``;
* ``keys``: keys of the noise keystream (fresh CSPRNG keys, caller keys, key ids);
* ``ledger``: which released vectors this process released, and with what guarantee.

The guarantee, in one sentence: each face's released identity vector is
(effective_epsilon, delta)-DP with respect to replacing the person; the generator's
attribute path, faces the detector misses and image metadata are NOT covered.

Nothing is imported here, so ``privacy.keys`` and ``privacy.accounting`` load without torch.
"""
