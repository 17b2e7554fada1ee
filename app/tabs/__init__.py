"""One module per tab: `build(studio)` lays it out and wires its events; the handlers next to
it are plain functions of the `Studio` (so tests and benchmarks call them directly)."""
