"""`python -m codec.lm --config configs/lm_alm_w3.yaml [--resume] [key=value ...]`: train a token
LM (`codec.lm.cli`)."""

import sys

from codec.lm.cli import main

sys.exit(main())
