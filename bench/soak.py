"""The app under a crowd: start `python -m app`, drive N scripted users for T minutes, and report
what a lab would watch: requests per second, latency percentiles, refusals and errors, whether
the page still answers, and the app's memory, disk and open files over time.

    python -m bench.soak                                   # 8 users, 3 minutes
    python -m bench.soak --users 50 --minutes 10
    python -m bench.soak --users 20 --minutes 60 --report-every 300
    python -m bench.soak --users 1 --minutes 2 --repo /tmp/before  # another checkout

Each user is a `gradio_client.Client` that, in a loop, reconstructs a 2 s clip at a random
window and bandwidth (`/reconstruct`, then the chained `/reconstruct_judge` as the page does);
the bandwidths are those the app's EnCodec offers, read from its API (its checkpoint's).
The clips are a pool of max(200, 20 x users) distinct 2 s wavs (held-out demo notes and speech
clips, each with a dither of its own), drawn at random: a request repeats an earlier clip at
the same setting rarely (the app's results cache keeps the last 128 columns; a repeat inside it
is served from there), so the figures are mostly for new uploads. A prober asks
for the page (`GET /`), its config (`GET /config`) and the warm-up status (a queue-free call)
every few seconds and reports the slowest answer. The app runs with its own temporary folder
(TMPDIR and GRADIO_TEMP_DIR), so "disk" is everything it wrote: outputs, exports, uploads and
Gradio's copies.

Printed every `--report-every` seconds: answered requests and rate, refusals ("busy"), errors,
latency p50 / p90 / p99 of the answered ones, the slowest page / config / status answer, RSS of
the app process, disk MB and files, open file descriptors. At the end: memory growth over the
last half of the run (the soak criterion: under 10 %) and the largest disk figure against the
app's cap.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
REPO = Path(__file__).resolve().parents[1]
CLIP_SECONDS = 2.0
SR = 24000


@dataclass
class Tally:
    """What the users and the prober saw (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (end time, seconds)
    busy: int = 0
    errors: list[str] = field(default_factory=list)
    probes: list[tuple[float, str, float]] = field(default_factory=list)  # (time, what, s)

    def ok(self, t: float, seconds: float) -> None:
        with self.lock:
            self.latencies.append((t, seconds))


def make_clips(n: int, folder: Path, seed: int = 0) -> list[Path]:
    """`n` distinct 2 s wavs: held-out demo clips tiled to 2 s, each with its own dither."""
    import numpy as np
    import soundfile as sf

    sys.path.insert(0, str(REPO))
    from analysis.dataset import heldout_items, load_items, unseen_sound_ids
    from codec.audio import load_audio

    root = REPO / "data" / "demo"
    items = heldout_items(load_items(root), sound_ids=unseen_sound_ids(root))
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = [load_audio(it.path, SR, 60.0).numpy()[0] for it in items]
    out = []
    length = int(CLIP_SECONDS * SR)
    for i in range(n):
        x = base[i % len(base)]
        x = np.tile(x, length // len(x) + 1)[:length]
        x = x + 1e-4 * rng.standard_normal(length).astype(np.float32)
        path = folder / f"clip{i:05d}.wav"
        sf.write(path, x, SR, subtype="PCM_16")
        out.append(path)
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def disk(folder: Path) -> tuple[float, int]:
    total, files = 0, 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += (Path(dirpath) / name).stat().st_size
                files += 1
            except OSError:
                pass
    return total / 1e6, files


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def bandwidth_choices(api: dict) -> list[float]:
    """The bandwidths (kbps) the app's `/reconstruct` takes, from `Client.view_api(...,
    return_format="dict")`: its bandwidth radio offers those of the EnCodec checkpoint."""
    params = api["named_endpoints"]["/reconstruct"]["parameters"]
    for param in params:
        if param.get("parameter_name") == "bandwidth":
            texts = next(t["enum"] for t in param["type"]["anyOf"] if "enum" in t)
            return sorted({float(t) for t in texts})
    raise RuntimeError("the app's /reconstruct has no bandwidth parameter (no EnCodec loaded?)")


def user(
    url: str,
    clips: list[Path],
    stop: threading.Event,
    tally: Tally,
    seed: int,
    bandwidths: list[float],
) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    rng = random.Random(seed)
    try:
        client = Client(url, verbose=False, download_files=False)
    except Exception as e:  # a connect that failed is what the crowd test is about
        with tally.lock:
            tally.errors.append(f"connect: {type(e).__name__}: {e}"[:200])
        return
    while not stop.is_set():
        clip = clips[rng.randrange(len(clips))]
        w, bw = rng.randint(2, 10), rng.choice(bandwidths)
        t0 = time.perf_counter()
        try:
            out = client.predict(handle_file(str(clip)), w, bw, api_name="/reconstruct")
            players = [p["path"] if isinstance(p, dict) else p for p in (out[2], out[7])]
            client.predict(*map(handle_file, players), api_name="/reconstruct_judge")
            tally.ok(time.time(), time.perf_counter() - t0)
        except AppError as e:
            with tally.lock:
                if "busy" in str(e):
                    tally.busy += 1
                else:
                    tally.errors.append(f"{type(e).__name__}: {e}"[:200])
            time.sleep(1.0)
        except Exception as e:
            with tally.lock:
                tally.errors.append(f"{type(e).__name__}: {e}"[:200])
            time.sleep(1.0)


def prober(url: str, stop: threading.Event, tally: Tally, every: float = 5.0) -> None:
    from gradio_client import Client

    status = Client(url, verbose=False, download_files=False)
    while not stop.is_set():
        for what, fn in (
            ("page", lambda: urllib.request.urlopen(url, timeout=60).read()),
            ("config", lambda: urllib.request.urlopen(url + "config", timeout=60).read()),
            ("status", lambda: status.predict(api_name="/warmup_status")),
        ):
            t0 = time.perf_counter()
            try:
                fn()
                took = time.perf_counter() - t0
            except Exception:
                took = float("inf")
            with tally.lock:
                tally.probes.append((time.time(), what, took))
        stop.wait(every)


def start_app(repo: Path, port: int, tmp: Path, app_args: list[str]) -> subprocess.Popen:
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, "-m", "app", "--port", str(port), "--log-level", "WARNING", *app_args]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.time()
    while time.time() - t0 < 300:
        if proc.poll() is not None:
            raise RuntimeError(f"python -m app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the app did not answer within 300 s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--report-every", type=float, default=60.0, help="seconds between reports")
    p.add_argument("--warmup-seconds", type=float, default=60.0,
                   help="let the app's background warm-up run before the users start")  # fmt: skip
    p.add_argument("--repo", type=Path, default=REPO, help="the checkout whose app to start")
    p.add_argument("--port", type=int, default=7875)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("app_args", nargs="*", help="flags for python -m app (after --)")
    args = p.parse_args(argv)
    if args.users < 1 or args.minutes <= 0:
        p.error("--users must be >= 1 and --minutes > 0")

    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    clips = make_clips(max(200, 20 * args.users), tmp / "clips", args.seed)
    app_tmp = tmp / "app"
    (app_tmp / "gradio").mkdir(parents=True)
    proc = start_app(args.repo, args.port, app_tmp, args.app_args)
    url = f"http://127.0.0.1:{args.port}/"
    print(f"# soak: {args.users} users x {args.minutes:g} min, app from {args.repo} "
          f"(pid {proc.pid}), flags {args.app_args or 'default'}", flush=True)  # fmt: skip
    time.sleep(args.warmup_seconds)
    from gradio_client import Client

    try:
        api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
        bandwidths = bandwidth_choices(api)
    except Exception:
        proc.terminate()
        proc.wait(30)
        raise
    print(f"# bandwidths {', '.join(f'{b:g}' for b in bandwidths)} kbps", flush=True)
    stop, tally = threading.Event(), Tally()
    threads = [threading.Thread(target=prober, args=(url, stop, tally), daemon=True)]
    threads += [
        threading.Thread(
            target=user, args=(url, clips, stop, tally, args.seed + i, bandwidths), daemon=True
        )
        for i in range(args.users)
    ]
    t_start = time.time()
    for t in threads:
        t.start()
    header = ("| min | answered | req/s | busy | errors | p50 s | p90 s | p99 s | page max s | "
              "config max s | status max s | RSS MB | disk MB | files | fds |")  # fmt: skip
    print(header + "\n" + "|---" * 15 + "|", flush=True)
    samples: list[tuple[float, float]] = []
    last = t_start
    end = t_start + 60 * args.minutes
    try:
        while time.time() < end:
            time.sleep(min(args.report_every, max(0.0, end - time.time())))
            now = time.time()
            with tally.lock:
                lat = [s for t, s in tally.latencies if last <= t < now]
                n_all, busy, errs = len(tally.latencies), tally.busy, len(tally.errors)
                probes = [(w, s) for t, w, s in tally.probes if last <= t < now]
            worst = {w: max((s for k, s in probes if k == w), default=float("nan"))
                     for w in ("page", "config", "status")}  # fmt: skip
            rss = rss_mb(proc.pid)
            mb, files = disk(app_tmp)
            samples.append((now - t_start, rss))
            print(f"| {(now - t_start) / 60:.1f} | {n_all} | {len(lat) / (now - last):.2f} | "
                  f"{busy} | {errs} | {pct(lat, 50):.1f} | {pct(lat, 90):.1f} | "
                  f"{pct(lat, 99):.1f} | {worst['page']:.2f} | {worst['config']:.2f} | "
                  f"{worst['status']:.2f} | {rss:.0f} | {mb:.1f} | {files} | "
                  f"{open_fds(proc.pid)} |", flush=True)  # fmt: skip
            last = now
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        proc.terminate()
        proc.wait(30)
    with tally.lock:
        lat = [s for _, s in tally.latencies]
        probes = list(tally.probes)
        errors = list(tally.errors)
    secs = 60 * args.minutes
    print()
    print(f"answered {len(lat)} in {secs:.0f} s: {len(lat) / secs:.3f} req/s; busy "
          f"{tally.busy}; errors {len(errors)}; latency p50 {pct(lat, 50):.1f} s, p90 "
          f"{pct(lat, 90):.1f} s")  # fmt: skip
    for what in ("page", "config", "status"):
        s = [x for _, w, x in probes if w == what]
        over = sum(x > 2.0 for x in s)
        print(f"{what}: max {max(s, default=float('nan')):.2f} s, {over} of {len(s)} over 2 s")
    half = [r for t, r in samples if t >= secs / 2]
    if len(half) >= 2:
        growth = (half[-1] - half[0]) / half[0] * 100
        print(f"RSS over the last half: {half[0]:.0f} -> {half[-1]:.0f} MB ({growth:+.1f} %)")
    for e in sorted(set(errors))[:10]:
        print(f"error: {e}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
