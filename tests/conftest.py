"""Fixtures shared by the test modules. Plain builders live in helper modules, never in test
modules (test modules do not import each other): tests/fixtures.py for datasets in the real
layouts, tests/tiny_models.py for CPU-sized models and the timbre dataset, tests/app_assets.py
for the app's checkpoints and clips.

- `assets`: the app's assets (small random-init checkpoints, a miniature Good-sounds with
  speech, test clips), built once per test module that asks for them.
"""

from __future__ import annotations

import pytest

from tests.app_assets import AppAssets, make_app_assets


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> AppAssets:
    """Small checkpoints, dataset and clips for the app, one set per test module."""
    return make_app_assets(tmp_path_factory.mktemp("app"))
