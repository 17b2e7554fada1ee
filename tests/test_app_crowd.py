"""What keeps the app answering under a crowd, unit by unit: the request gate (slots, the line,
"busy, N ahead" at its bound), the disk cap (oldest files first), the bandwidth control that
takes numbers and texts, and figures that are plain plotly JSON."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from app.gate import BusyError, RequestGate  # noqa: E402
from app.janitor import DiskCap, disk_usage, refreshed  # noqa: E402
from codec.models.base import CodecSetting  # noqa: E402


# --- the gate ------------------------------------------------------------------------------------
def test_gate_runs_slots_at_once_in_arrival_order_and_refuses_beyond_the_line() -> None:
    async def scenario() -> tuple[list[str], list[tuple[int, int]], str, int]:
        gate = RequestGate(slots=2, max_waiting=3)
        order: list[str] = []
        places: list[tuple[int, int]] = []
        release = asyncio.Event()
        running = 0
        peak = 0

        async def job(name: str) -> None:
            nonlocal running, peak
            async with gate.slot(lambda p, n, name=name: places.append((p, n))):
                running += 1
                peak = max(peak, running)
                order.append(name)
                await release.wait()
                running -= 1

        tasks = [asyncio.create_task(job(f"r{i}")) for i in range(5)]
        await asyncio.sleep(0.05)
        assert gate.running == 2 and gate.waiting == 3 and gate.ahead() == 5
        with pytest.raises(BusyError) as busy:  # the sixth: at once, not after a wait
            t0 = time.perf_counter()
            async with gate.slot():
                pass
        assert time.perf_counter() - t0 < 0.1
        release.set()
        await asyncio.gather(*tasks)
        assert gate.running == 0 and gate.waiting == 0 and gate.served == 5
        return order, places, str(busy.value), peak

    order, places, message, peak = asyncio.run(scenario())
    assert order == ["r0", "r1", "r2", "r3", "r4"]  # first come, first served
    assert peak == 2
    assert places[:3] == [(1, 1), (2, 2), (3, 3)]  # each waiter saw its place as it joined
    assert "busy" in message and "5 requests are ahead" in message and "2 run at a time" in message


def test_gate_a_request_cancelled_in_line_leaves_it_and_passes_its_slot_on() -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        gate = RequestGate(slots=1, max_waiting=5)
        done: list[str] = []
        release = asyncio.Event()

        async def job(name: str) -> None:
            async with gate.slot():
                await release.wait()
                done.append(name)

        first = asyncio.create_task(job("first"))
        await asyncio.sleep(0.01)
        leaver = asyncio.create_task(job("leaver"))
        last = asyncio.create_task(job("last"))
        await asyncio.sleep(0.01)
        assert gate.waiting == 2
        leaver.cancel()
        await asyncio.sleep(0.01)
        waiting_after = gate.waiting
        release.set()
        await asyncio.gather(first, last)
        with pytest.raises(asyncio.CancelledError):
            await leaver
        return waiting_after, gate.running, done

    waiting_after, running, done = asyncio.run(scenario())
    assert waiting_after == 1 and running == 0
    assert done == ["first", "last"]


def test_gate_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="slots"):
        RequestGate(0, 4)


# --- the disk cap -------------------------------------------------------------------------------
def _file(path: Path, size: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (mtime, mtime))
    return path


def test_disk_cap_removes_oldest_files_first_until_under_the_cap(tmp_path: Path) -> None:
    now = time.time()
    a, b = tmp_path / "out", tmp_path / "gradio"
    old = [_file(a / f"old{i}.wav", 1000, now - 100 + i) for i in range(5)]
    mid = _file(b / "h1" / "upload.wav", 1000, now - 50)
    new = [_file(a / f"new{i}.wav", 1000, now - 10 + i) for i in range(3)]
    young = _file(b / "h2" / "being_served.wav", 5000, now)  # younger than keep_seconds
    assert disk_usage([a, b]).bytes == 14_000
    cap = DiskCap([a, b], max_bytes=8_500, keep_seconds=5.0)
    usage = cap.enforce(now)
    assert usage.bytes == 8_000 <= 8_500 and cap.removed == 6
    assert not any(p.exists() for p in old) and not mid.exists()
    assert all(p.exists() for p in new) and young.exists()
    assert (b / "h1").is_dir()  # emptied just now: kept for this round, removed the next
    cap.enforce(time.time() + 10)
    assert not (b / "h1").exists() and young.exists()
    # a young file is kept even when the cap cannot be met without it
    usage = DiskCap([a, b], max_bytes=1_000, keep_seconds=5.0).enforce(now)
    assert young.exists() and usage.bytes == 5_000


def test_a_file_handed_out_again_counts_as_new_for_the_disk_cap(tmp_path: Path) -> None:
    now = time.time()
    old = [_file(tmp_path / f"old{i}.wav", 1000, now - 100 + i) for i in range(3)]
    assert refreshed(old[0]) and not refreshed(tmp_path / "gone.wav")
    DiskCap([tmp_path], max_bytes=1_000, keep_seconds=5.0).enforce(time.time())
    assert old[0].exists() and not old[1].exists() and not old[2].exists()


def test_app_keeps_a_cached_column_only_while_its_file_exists() -> None:
    from app.state import LRU

    lru, calls = LRU(4), []

    def compute() -> str:
        calls.append(1)
        return f"v{len(calls)}"

    present = {"v1": True}
    assert lru.get_or_compute("k", compute, lambda v: present.get(v, True)) == "v1"
    assert lru.get_or_compute("k", compute, lambda v: present.get(v, True)) == "v1"
    present["v1"] = False  # the disk cap removed its file
    assert lru.get_or_compute("k", compute, lambda v: present.get(v, True)) == "v2"
    assert len(calls) == 2


# --- what the API accepts -------------------------------------------------------------------------
def test_bandwidth_control_takes_numbers_and_texts() -> None:
    from app.tabs.widgets import setting_radio

    with gr.Blocks():
        radio = setting_radio(CodecSetting("bandwidth", (1.5, 3.0, 6.0), 1.5), label="bw")
    assert type(radio) is gr.Radio
    for given, want in [(1.5, 1.5), ("1.5", 1.5), ("3.0", 3.0), ("6", 6.0), (3, 3.0)]:
        assert radio.preprocess(given) == want
    with pytest.raises(gr.Error, match=r"bandwidth must be one of 1\.5, 3, 6 kbps, got '2\.5'"):
        radio.preprocess("2.5")
    info = radio.api_info()
    assert {"type": "number"} in info["anyOf"]
    assert {"type": "string", "enum": ["1.5", "3.0", "6.0"]} in info["anyOf"]


def test_soak_users_draw_the_bandwidths_the_app_offers() -> None:
    """bench.soak reads the bandwidths from the app's API (`view_api` as a dict, whose
    parameter types are the controls' `api_info`): 0.75 where the checkpoint offers it."""
    from app.tabs.widgets import setting_radio
    from bench.soak import bandwidth_choices

    with gr.Blocks():
        radio = setting_radio(CodecSetting("bandwidth", (0.75, 1.5, 3.0, 6.0), 0.75), label="bw")
    params = [
        {"parameter_name": "audio", "type": {"type": "string"}},
        {"parameter_name": "window", "type": {"type": "number"}},
        {"parameter_name": "bandwidth", "type": radio.api_info()},
    ]
    api = {"named_endpoints": {"/reconstruct": {"parameters": params}}}
    assert bandwidth_choices(api) == [0.75, 1.5, 3.0, 6.0]
    api["named_endpoints"]["/reconstruct"]["parameters"] = params[:2]
    with pytest.raises(RuntimeError, match="no bandwidth parameter"):
        bandwidth_choices(api)


# --- figures -------------------------------------------------------------------------------------
def test_figures_are_plotly_json_with_typed_arrays() -> None:
    from app.figures import spectrogram_figure, token_timeline_figure
    from app.tabs.reconstruct import Column  # noqa: F401 - the column type holds these
    from codec.tokenizer.stats import token_timeline
    from tests.test_app import arr

    wav = torch.sin(torch.arange(24000) / 24000 * 2 * torch.pi * 440)[None] * 0.5
    spec = json.loads(spectrogram_figure(wav, "a tone").plot)
    z = arr(spec["data"][0]["z"])
    assert z.shape[0] == 80 and z.dtype.kind == "f"
    assert spec["layout"]["title"]["text"] == "a tone"
    peak_bin = int(z.mean(axis=1).argmax())  # 440 Hz: a low mel bin of 80 up to 12 kHz
    assert 10 <= peak_bin <= 30
    codes = torch.tensor([[0, 5, 5, 2047], [1, 1, 2, 3]])
    tl = json.loads(token_timeline_figure(token_timeline(codes, 18.75), "t").plot)
    assert arr(tl["data"][0]["z"]).tolist() == codes.tolist()
    assert tl["data"][0]["z"]["dtype"] == "i2"
