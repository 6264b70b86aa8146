"""Files and streams around the pipeline: what a batch or a video needs.

* ``files``: batch anonymisation of image files and folders (plan, atomic writes, per-file
  keys, the report) for ``identitydp anonymize``;
* ``image_codec``: image files in, image files out in the input's own format and metadata;
* ``video``: video anonymisation, one DP release per face track, audio kept;
* ``tracking``: faces linked into tracks across video frames;
* ``shared_data``: where the project's face data sets live (tests, tools, training).

Nothing here imports training/ or evaluation/.
"""
