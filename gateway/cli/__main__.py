"""``python -m gateway.cli``: the same as ``recsys``."""

from gateway.cli import main

main()
