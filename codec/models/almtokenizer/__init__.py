"""ALMTokenizer: query-based low-bitrate audio tokenizer (arXiv 2504.10344)."""

from codec.models.almtokenizer.config import ALMConfig, BaseArgs, MAEArgs, preset
from codec.models.almtokenizer.model import ALMTokenizer

__all__ = ["ALMConfig", "ALMTokenizer", "BaseArgs", "MAEArgs", "preset"]
