"""Fixtures shared by the test modules (plain builders live in helper modules, never in test
modules: tests/fixtures.py for datasets, tests/tiny_models.py for CPU-sized models,
tests/app_assets.py for the app's checkpoints and clips).

- `assets`: the app's assets (small random-init checkpoints, a miniature Good-sounds with
  speech, test clips), built once per test module.
- `tiny_alm`, `tiny_encodec`: fresh copies of CPU-sized models with k-means-initialised
  codebooks (seed 0), in eval mode.
"""

from __future__ import annotations

import pytest

from tests.app_assets import AppAssets, make_app_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> AppAssets:
    """Small checkpoints, dataset and clips for the app, one set per test module."""
    return make_app_assets(tmp_path_factory.mktemp("app"))
