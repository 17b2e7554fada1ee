"""The app under concurrent users, hostile uploads and hostile names.

- 8 gradio_client sessions at once, each reconstructing and transferring its *own* clip (all of
  different lengths, different windows and bandwidths): every call succeeds and every output
  has the caller's length and setting (no cross-talk through caches or the EnCodec bandwidth).
- Duration and size limits: a clip over --max-seconds (also one whose tiny file claims 2 hours
  in its header) gets a readable error, quickly; a large non-audio upload too.
- Export names cannot leave the export folder: hypothesis over names for `export_audio`, plus
  hostile upload file names and waypoint texts through the running app; zip members are plain
  relative paths.
- Temporary files: no partial/temporary files survive requests.
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from analysis.export import export_audio, safe_name  # noqa: E402
from app.cli import create_app, serve  # noqa: E402
from codec.audio import load_audio  # noqa: E402
from tests.app_assets import AppAssets, free_port  # noqa: E402

SR = 24000
SESSIONS = 8
MAX_SECONDS = 2.5


@pytest.fixture(scope="module")
def server(assets: AppAssets):
    cfg = assets.config(
        port=free_port(), max_seconds=MAX_SECONDS, warmup=False, export_dir=None,
        concurrency=SESSIONS,
    )  # fmt: skip
    studio, demo = create_app(cfg)
    url = serve(studio, demo, block=False)
    yield studio, demo, url
    demo.close()


def wav_len(path: str) -> int:
    return sf.info(path).frames


def session_clip(root: Path, i: int) -> tuple[Path, int]:
    """A distinct clip per session: length (0.5 + 0.1 i) s at 16/44.1/48 kHz, its own tone."""
    sr = (16000, 44100, 48000)[i % 3]
    seconds = 0.5 + 0.1 * i
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * (180 + 60 * i) * t)).astype(np.float32)
    p = root / f"session_{i}.wav"
    sf.write(p, x, sr)
    return p, int(load_audio(p).shape[-1])


def test_eight_concurrent_sessions(server, assets: AppAssets, tmp_path: Path) -> None:
    """8 clients start together; each reconstructs (own window and bandwidth) and transfers."""
    studio, _, url = server
    bandwidths = [1.5, 3.0, 6.0, 12.0]
    clips = [session_clip(tmp_path, i) for i in range(SESSIONS)]
    results: dict[int, dict] = {}
    errors: dict[int, BaseException] = {}
    barrier = threading.Barrier(SESSIONS)

    def session(i: int) -> None:
        try:
            client = Client(url, verbose=False, download_files=str(tmp_path / f"dl{i}"))
            path, n = clips[i]
            w, bw = 2 + i % 9, bandwidths[i % 4]
            barrier.wait(timeout=120)
            t0 = time.perf_counter()
            rec = client.predict(handle_file(str(path)), w, bw, api_name="/reconstruct")
            tr = client.predict(
                handle_file(str(path)), "cello", "(any)", 0.5 + 0.1 * i, w, api_name="/transfer"
            )
            results[i] = dict(rec=rec, tr=tr, n=n, w=w, bw=bw, s=time.perf_counter() - t0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[i] = e

    threads = [threading.Thread(target=session, args=(i,)) for i in range(SESSIONS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - t0
    assert not errors, {i: repr(e) for i, e in errors.items()}
    assert sorted(results) == list(range(SESSIONS))
    for i, r in results.items():
        rec, tr, n = r["rec"], r["tr"], r["n"]
        alm_audio, enc_audio, table = rec[2], rec[7], rec[12]
        assert wav_len(alm_audio) == n and wav_len(enc_audio) == n, (i, n)
        rows = table["data"] if isinstance(table, dict) else table
        assert rows[0][1] == f"w={r['w']}", (i, rows)
        assert rows[1][1] == f"{r['bw']:g} kbps" and float(rows[1][3]) == r["bw"], (i, rows)
        *players, zpath, caption = tr
        assert len(players) == 4 and all(wav_len(p) == n for p in players), i
        assert f"session_{i}.wav" in caption
        with zipfile.ZipFile(zpath) as zf:
            assert len(zf.namelist()) == 4
    print(
        f"\n{SESSIONS} sessions x (reconstruct + transfer): all ok in {wall:.1f} s wall, "
        f"per-session {min(r['s'] for r in results.values()):.1f}"
        f"-{max(r['s'] for r in results.values()):.1f} s"
    )


def test_duration_limits(server, tmp_path: Path) -> None:
    """Over the cap (real length), and a 300-byte FLAC whose header claims 2 hours: readable
    'too long' errors in well under a second of server work."""
    _, _, url = server
    client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
    over = tmp_path / "over_cap.wav"
    sf.write(over, np.zeros(int((MAX_SECONDS + 0.5) * SR), np.float32), SR)
    with pytest.raises(AppError, match="too long"):
        client.predict(handle_file(str(over)), 4, 1.5, api_name="/reconstruct")

    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros(2400, np.float32), SR, format="FLAC")
    data = bytearray(buf.getvalue())
    bits = int.from_bytes(data[18:26], "big")
    data[18:26] = ((bits & ~((1 << 36) - 1)) | 2 * 3600 * SR).to_bytes(8, "big")
    claim = tmp_path / "claims_two_hours.flac"
    claim.write_bytes(bytes(data))
    t0 = time.perf_counter()
    with pytest.raises(AppError, match="too long") as e:
        client.predict(handle_file(str(claim)), 4, 1.5, api_name="/reconstruct")
    assert time.perf_counter() - t0 < 10
    assert "7200" in str(e.value) and "Traceback" not in str(e.value)
    for fn, args in (
        ("/transfer", ("cello", "(any)", 1.0, 4)),
        ("/traverse", None),
    ):
        with pytest.raises(AppError, match="too long"):
            if args is None:
                client.predict(
                    ["bass A3"], [handle_file(str(over))], "glide", 4, "linear", 4, api_name=fn
                )
            else:
                client.predict(handle_file(str(over)), *args, api_name=fn)


def test_large_non_audio_upload(server, tmp_path: Path) -> None:
    """A 20 MB file of zeros named .wav: a readable error, and the server keeps serving."""
    _, _, url = server
    client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
    big = tmp_path / "big.wav"
    with open(big, "wb") as f:
        f.truncate(20 * 1024 * 1024)
    with pytest.raises(AppError, match="not an audio file"):
        client.predict(handle_file(str(big)), 4, 1.5, api_name="/reconstruct")
    path, n = session_clip(tmp_path, 0)
    out = client.predict(handle_file(str(path)), 3, 1.5, api_name="/reconstruct")
    assert wav_len(out[2]) == n


def test_upload_size_is_capped(server) -> None:
    """Gradio refuses uploads over --max-upload-mb before storing them, and deletes its copies
    of files after an hour (all of them when the server stops)."""
    from app.config import GRADIO_CACHE_SECONDS

    studio, demo, _ = server
    assert demo.max_file_size == int(studio.config.max_upload_mb * 1024 * 1024)
    assert demo.delete_cache == (GRADIO_CACHE_SECONDS, GRADIO_CACHE_SECONDS)


# ------------------------------------------------------------------------------------------------
# hostile names
# ------------------------------------------------------------------------------------------------
NAMES = st.one_of(
    st.text(max_size=40),
    st.sampled_from([
        "../../x", "..", ".", "/etc/passwd", "a/../../b", "..\\..\\win", "\x00evil", "~root",
        "bass A3 -> clarinet A6", "C:\\temp\\x", "x" * 500, "é\u202egnp.wav", "-rf", "./.",
    ]),
)  # fmt: skip


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NAMES, sub=NAMES, stems=st.lists(NAMES, min_size=1, max_size=3))
def test_export_names_cannot_escape(tmp_path: Path, name: str, sub: str, stems: list[str]) -> None:
    root = tmp_path / "exports"
    wav = torch.zeros(1, 64)
    res = export_audio({sub: {s: wav for s in stems}}, root, name)
    root_r = root.resolve()
    for f in [res.folder, res.zip_path, *res.files]:
        assert root_r in Path(f).resolve().parents, f
    for p in tmp_path.rglob("*"):
        assert p.resolve() == root_r or root_r in p.resolve().parents, p
    with zipfile.ZipFile(res.zip_path) as zf:
        for member in zf.namelist():
            assert not member.startswith(("/", "\\")) and ".." not in Path(member).parts, member
    assert safe_name(name) and "/" not in safe_name(name) and safe_name(name) not in (".", "..")


def test_hostile_upload_names_and_waypoints_through_the_app(server, tmp_path: Path) -> None:
    """Uploads named like '..' tricks and waypoint texts like '../../x': exports stay inside
    the export folder, zips hold plain relative names, bad waypoints are readable errors."""
    studio, _, url = server
    client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
    export_root = Path(studio.config.export_dir).resolve()
    src, n = session_clip(tmp_path, 1)
    outside_before = set(tmp_path.parent.iterdir())
    for odd in ("..wav", "....wav", "-rf ;rm x.wav", "é\u202eevil.wav", "%2e%2e%2fx.wav"):
        p = tmp_path / odd
        p.write_bytes(src.read_bytes())
        *players, zpath, _ = client.predict(
            handle_file(str(p)), "cello", "(any)", 1.0, 4, api_name="/transfer"
        )
        served = studio.out_dir.resolve()
        for f in [*players, zpath]:
            assert wav_len(f) == n if f.endswith(".wav") else True
        with zipfile.ZipFile(zpath) as zf:
            for member in zf.namelist():
                assert ".." not in Path(member).parts and not member.startswith("/"), member
        exported = [q.resolve() for q in export_root.rglob("*.zip")]
        assert exported and all(served in q.parents for q in exported)
    for text in ("../../x", "/etc/passwd", "upload 9", "bass A3/../../../x", "\x00"):
        with pytest.raises(AppError) as e:
            client.predict([text, "bass A3"], None, "glide", 4, "linear", 4, api_name="/traverse")
        assert "Traceback" not in str(e.value)
    assert set(tmp_path.parent.iterdir()) == outside_before
    assert not list(Path("/").glob("x")) and not (export_root.parent.parent / "x").exists()


def test_no_temporary_files_left(server, tmp_path: Path) -> None:
    """After requests (successful and failing), no '.tmp' / partial files remain in the app's
    folders; repeated identical requests reuse the reconstruction files."""
    studio, _, url = server
    client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
    path, _ = session_clip(tmp_path, 2)
    client.predict(handle_file(str(path)), 5, 1.5, api_name="/reconstruct")
    wavs_before = sorted(p.name for p in studio.out_dir.glob("*.wav"))
    for _ in range(3):
        client.predict(handle_file(str(path)), 5, 1.5, api_name="/reconstruct")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(300))
    with pytest.raises(AppError):
        client.predict(handle_file(str(junk)), 5, 1.5, api_name="/reconstruct")
    assert sorted(p.name for p in studio.out_dir.glob("*.wav")) == wavs_before
    leftovers = [
        p for p in studio.out_dir.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name
        or (p.name.startswith(".") and p.suffix in (".wav", ".zip", ".npz"))
    ]  # fmt: skip
    assert not leftovers, leftovers
    cache = studio.config.cache_dir
    if cache is not None and Path(cache).exists():
        assert not [p for p in Path(cache).rglob(".*.npz")], "partial latent-cache files"


def test_exports_per_request_are_bounded(server, tmp_path: Path, monkeypatch) -> None:
    """Every transfer/traversal click writes a new export folder (4 wavs + players + zip); only
    the --keep-exports newest per tab are kept, and failed requests write nothing."""
    studio, _, url = server
    monkeypatch.setattr(studio.config, "keep_exports", 2)
    client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
    root = Path(studio.config.export_dir)
    path, _ = session_clip(tmp_path, 3)

    def count() -> tuple[int, int]:
        files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
        return len(files), sum(p.stat().st_size for p in files)

    def transfer() -> None:
        client.predict(handle_file(str(path)), "cello", "(any)", 1.0, 4, api_name="/transfer")

    transfer()
    transfer()
    n0, b0 = count()
    for _ in range(3):
        with pytest.raises(AppError):
            client.predict(handle_file(str(path)), "kazoo", "(any)", 1.0, 4, api_name="/transfer")
    assert count() == (n0, b0), "failed requests left files behind"
    for _ in range(3):
        transfer()
    n1, b1 = count()
    print(f"\nexport folder: {n0} files / {b0} B after 2 transfers, {n1} / {b1} B after 5")
    assert len(list(root.glob("timbre-*"))) == 2
    assert n1 == n0, "identical transfers beyond --keep-exports grew the export folder"


# ------------------------------------------------------------------------------------------------
# export folders and upload/export flags
# ------------------------------------------------------------------------------------------------
def test_export_folders_are_pruned_per_kind(tmp_path: Path) -> None:
    from app.state import Studio

    studio = SimpleNamespace(
        config=SimpleNamespace(export_dir=tmp_path / "exports", keep_exports=3),
        export_lock=threading.Lock(),
    )
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "timbre-mine").mkdir()  # not an export folder's name: kept
    made = []
    for i in range(6):
        made.append(Studio.new_export_folder(studio, "timbre"))  # type: ignore[arg-type]
        os.utime(made[-1], (i, i))  # creation order, whatever the clock's resolution
    other = Studio.new_export_folder(studio, "traversal")  # type: ignore[arg-type]
    left = sorted((tmp_path / "exports").iterdir())
    assert left == sorted([*made[-3:], other, tmp_path / "exports" / "timbre-mine"])


def test_app_cli_upload_and_export_flags() -> None:
    from app.cli import build_parser, config_from_args

    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["--no-warmup"]), parser)
    assert (cfg.max_upload_mb, cfg.keep_exports) == (50.0, 20)
    cfg = config_from_args(
        parser.parse_args(["--max-upload-mb", "5", "--keep-exports", "3"]), parser
    )
    assert (cfg.max_upload_mb, cfg.keep_exports) == (5.0, 3)
    for bad in (["--keep-exports", "0"], ["--max-upload-mb", "0"], ["--max-upload-mb", "nan"]):
        with pytest.raises(SystemExit) as e:
            config_from_args(parser.parse_args(bad), parser)
        assert e.value.code == 2
