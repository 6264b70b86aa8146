"""The stages of the anonymisation pipeline that sit around the networks (used by
identitydp_fast/anonymizer.py):

* ``image_kinds``: any caller image -> (H, W, 3) uint8 RGB, and the result back in the
  caller's own kind (numpy / torch / PIL, dtype, channels, mode), unchanged pixels exact;
* ``paste``: generated crops back into the frame through a feathered mask;
* ``ledger``: which released vectors this process released, and with what guarantee.
"""
