"""The library's exception hierarchy: every error raised for a user's mistake or bad file is a
``DGMError`` (a ``ValueError``), of one of four kinds naming what went wrong:

- ``DataError``: a dataset is missing, corrupt or inconsistent (the message names the file/dir);
- ``WeightsError``: a weights file or model card is missing, corrupt, non-finite or does not fit
  the architecture asked for;
- ``ConfigError``: an option or a combination of options is invalid (range, unknown name, a
  ``--resume`` with another configuration, an existing output folder);
- ``InputError``: an array or value passed to a public function is malformed (shape, NaN, range).

A plain ``DGMError`` is any other bad use of the API.
"""


class DGMError(ValueError):
    """Bad input to a public function: the message names the argument and what was expected."""


class DataError(DGMError):
    """A dataset is missing, corrupt or inconsistent; the message names the file(s)."""


class WeightsError(DGMError):
    """A weights file or its card is missing, corrupt, non-finite or of another architecture."""


class ConfigError(DGMError):
    """An option, or a combination of options, is invalid; the message names the option."""


class InputError(DGMError):
    """An input array or value is malformed (shape, dtype, NaN/inf, range)."""
