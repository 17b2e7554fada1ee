"""ALMTokenizer Studio: the Gradio app (`python -m app`). UI wiring only; the models are in
`codec/`, the analysis in `analysis/`."""

import os

# Before anything imports gradio: no usage analytics (the app must run without network).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
