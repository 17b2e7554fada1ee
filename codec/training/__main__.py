"""`python -m codec.training --config config.yaml [--resume] [key=value ...]`: train a codec
(`codec.training.cli`)."""

import sys

from codec.training.cli import main

sys.exit(main())
