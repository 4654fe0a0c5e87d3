"""The raw archive (shared with the scanner): see ``alertline.archive``."""

from alertline.archive import S3Archive

__all__ = ["S3Archive"]
