"""`python -m mcrd`: the same as the `mcrd` console script."""

import sys

from mcrd.cli import main

if __name__ == "__main__":
    sys.exit(main())
