"""The inference engine: the reference models' math with folded weights, channels-last
convolutions (torch: oneDNN / cuDNN) and the fused kernels (identitydp_fast/ops)
between them."""
