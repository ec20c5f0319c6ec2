"""``python -m zoo.cli``: the ``dgm`` command."""
import sys

from zoo.cli import main

sys.exit(main())
