"""Keep the bundled evaluation notes out of the corpus.

The demo set (data/demo) was rendered from FluidR3 too, and its val/test sounds are the
project's bundled evaluation set. So the corpus leaves out:
- rendered notes whose (GM program, MIDI pitch) is a demo val/test note, and
- FluidR3 raw samples that such a note plays (and the other channel of their stereo pair).
The instrument -> GM program map is data/render_demo.py's INSTRUMENTS (read, not copied).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
RENDER_DEMO = REPO / "data" / "render_demo.py"
EVAL_SPLITS = ("val", "test")


def load_render_demo(script: Path = RENDER_DEMO) -> ModuleType:
    """data/render_demo.py as a module (it is a script, not part of the package)."""
    if "_render_demo" in sys.modules:
        return sys.modules["_render_demo"]
    spec = importlib.util.spec_from_file_location("_render_demo", script)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{script}: cannot load the demo render script")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_render_demo"] = module
    spec.loader.exec_module(module)
    return module


def demo_programs() -> dict[str, int]:
    """{Good-sounds instrument: GM program (0-based)} used to render the demo set."""
    return {name: int(v[0]) for name, v in load_render_demo().INSTRUMENTS.items()}


def demo_eval_notes(root: Path | None = None) -> set[tuple[int, int]]:
    """(GM program, MIDI pitch) of every demo val/test note.

    Raises:
        FileNotFoundError: the demo set or its render script is missing.
    """
    from codec.data import list_items

    programs = demo_programs()
    out: set[tuple[int, int]] = set()
    for split in EVAL_SPLITS:
        for it in list_items("demo", root, split):
            midi = getattr(it, "midi", None)
            inst = getattr(it, "instrument", "")
            if midi is not None and inst in programs:
                out.add((programs[inst], int(midi)))
    logger.info("leak guard: %d (program, pitch) pairs of the demo val/test split", len(out))
    return out
