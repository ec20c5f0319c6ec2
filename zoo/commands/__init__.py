"""Subcommands of the ``dgm`` CLI (one module each; see ``zoo.cli``)."""
