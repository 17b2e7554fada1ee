"""Inference-only analysis of codecs through the `codec.models.base.Codec` interface.

Modules (one concept each): `latents` (cached continuous latents), `projection` (UMAP, PCA,
t-SNE, LDA), `plots` / `maps` (plotly latent maps), `groups` (attribute groups and centroids),
`interpolate` / `traversal` (glides and steps between waypoints), `timbre` (centroid timbre
transfer), `metrics` (aligned quality metrics), `probe` (semantic structure), `evaluate` /
`report` (held-out evaluation files), `continuation` / `continuation_lms` / `continuation_eval`
(a clip continued by each codec's token LM, and its held-out measures), `export` (safe wav/zip
export), `cli` (`python -m analysis`; `cli_continue` for continue and continue-eval).

Import the submodules directly; this package imports nothing heavy at import time.
"""
