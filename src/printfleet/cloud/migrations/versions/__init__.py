"""The store's schema revisions, oldest first by revision id (``r<id>_<slug>.py``)."""
