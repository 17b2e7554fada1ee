"""`python -m app`: start ALMTokenizer Studio (see `app.cli` for the flags)."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
