"""ALMTokenizer: query-based low-bitrate audio tokenizer (arXiv 2504.10344)."""

from codec.almtokenizer.config import ALMConfig, BaseArgs, MAEArgs, preset
from codec.almtokenizer.model import ALMTokenizer

__all__ = ["ALMConfig", "ALMTokenizer", "BaseArgs", "MAEArgs", "preset"]
