"""Files and streams around the pipeline: what a batch or a video needs.

* ``files``: batch anonymisation of image files and folders (plan, atomic writes, per-file
  keys, the report) for ``identitydp anonymize``;
* ``image_codec``: image files in, image files out in the input's own format and metadata;
* ``dataset``: whole data sets on Ray (``identitydp anonymize-dataset``): ``dataset_plan``
  (which files, where each goes, resume, safety checks), ``dataset_report`` (the Parquet /
  JSONL report), ``storage`` (local folders and s3:// prefixes: list, read, atomic write);
  ray and pyarrow are imported only when a run starts;
* ``video``: video anonymisation, one DP release per face track, audio kept;
* ``tracking``: faces linked into tracks across video frames;
* ``shared_data``: where the project's face data sets live (tests, tools, training).

Nothing here imports training/ or evaluation/.
"""
