"""The command line of LM training: `python -m codec.lm --config FILE [--resume] [key=value ...]`.

Exit status: 0 done; 2 a bad config, shard folder or checkpoint (one `error:` line naming the
key); 1 an I/O error such as a full disk; 130 interrupted (continue with `--resume`).
"""

from __future__ import annotations

from codec.lm.config import ConfigError, load_config
from codec.lm.loop import train
from codec.train_cli import run_trainer


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        argv,
        prog="python -m codec.lm",
        description="Train a token language model on a codec's code shards (docs/lm.md).",
        load_config=load_config,
        train=train,
        config_errors=(ConfigError,),
        config_help="YAML config, e.g. configs/lm_alm_w3.yaml",
    )
