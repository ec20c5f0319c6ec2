"""The data loaders' exception type: ``backends.DataError`` (a ``DGMError``)."""

from backends import DataError

__all__ = ["DataError"]
