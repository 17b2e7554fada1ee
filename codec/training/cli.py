"""The command line of the training loop: `python -m codec.training --config FILE [--resume]
[key=value ...]`.

Exit status: 0 done; 2 a bad config or checkpoint; 1 an I/O error such as a full disk (one
`error:` line naming the folder; the previous checkpoint stays intact); 130 interrupted.
"""

from __future__ import annotations

from codec.train_cli import run_trainer
from codec.training.config import ConfigError, load_config
from codec.training.loop import train


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        argv,
        prog="python -m codec.training",
        description="Train ALMTokenizer (or the EnCodec baseline, model.type=encodec).",
        load_config=load_config,
        train=train,
        config_errors=(ConfigError,),
        default_config="config.yaml",
        config_help="YAML config (default: config.yaml)",
    )
