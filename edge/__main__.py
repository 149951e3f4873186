"""`python -m edge --config FILE ...`: the same as `carbonwatch edge ...`, which imports no other package's command."""

from __future__ import annotations

import sys

from deploy.cli import main

if __name__ == "__main__":
    sys.exit(main(["edge", *sys.argv[1:]]))
