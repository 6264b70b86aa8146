"""Training support for identitydp-fast (issue 5).

``training.data`` turns the shared face sets (../shared/data: LFW, the UTKFace subset and
their 5-point landmark tables) into an on-disk cache of aligned model crops, made with
the same alignment code inference uses (``pipeline.align.crop_transform`` +
``ops.warp_affine``), together with each face's dlib identity descriptor, so training
needs neither dlib nor the JPEGs at run time. It also fixes the identity split (LFW
people with 5+ images are held out for evaluation and never trained on) and measures the
statistics behind the DP centre mu and clip radius C (DESIGN.md section 4).
"""
