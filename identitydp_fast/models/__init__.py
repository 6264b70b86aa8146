"""Pretrained model files and their readers.

``dlib_format`` reads dlib's serialisation (pure Python, no dlib needed);
``dlib_resnet`` finds dlib's face-recognition ResNet file and turns it into checked
weights (identitydp_fast/reference/dlib_resnet.py runs them). Nothing here imports dlib
or face_recognition_models.
"""
