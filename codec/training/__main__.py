"""`python -m codec.training --config config.yaml [key=value ...]`: train a codec (see `loop`)."""

import sys

from codec.training.loop import main

sys.exit(main())
