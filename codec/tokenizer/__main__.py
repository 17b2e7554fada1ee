"""`python -m codec.tokenizer {encode,decode,stats} ...`: tokenize a dataset (see `cli`)."""

import sys

from codec.tokenizer.cli import main

sys.exit(main())
