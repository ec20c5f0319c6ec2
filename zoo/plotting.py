"""matplotlib (the optional ``plot`` extra), imported only when a figure is drawn.

Every figure module gets ``pyplot`` from :func:`pyplot`; writers of a report call
:func:`available` first and skip the figures (saying so) when matplotlib is not installed, so
no ``dgm`` command needs it to start or to write its results.
"""
from __future__ import annotations

MISSING = "matplotlib is not installed (pip install 'dgm-cnnf[plot]'): figures skipped"


def available() -> bool:
    """Whether matplotlib can be imported (it is, when it can)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
