"""The library's single exception type (raised for bad input anywhere in dgm/inference/zoo)."""


class DGMError(ValueError):
    """Bad input to a public function: the message names the argument and what was expected."""
