"""The single exception type raised by the data loaders."""


class DataError(ValueError):
    """A dataset is missing, corrupt or inconsistent; the message names the file(s)."""
