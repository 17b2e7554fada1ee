"""Robustness and security of checkpoint loading: untrusted folders and weight files.

Every broken checkpoint is refused with a `CheckpointError` that names the offending file:
truncated / corrupted / random safetensors, wrong `format_version`, mismatched shapes, a
`config.json` that is not JSON (or JSON of the wrong shape), pickles and zips offered as
`model.safetensors`, an empty folder, a path that is a file. Nothing from a user-supplied path is
ever unpickled: malicious pickles (whose `__reduce__` would create a marker file) are refused and
the marker never appears, also under the official EnCodec file name. A source scan checks that
no code path can unpickle (only the hash-checked, `weights_only=True` official EnCodec load).
Plus `save_codec` faults: a disk-full error at any point leaves the previous checkpoint intact.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec.checkpoint as ck
from codec.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, save_codec
from codec.models.registry import load_codec
from tests.tiny_models import untrained_tiny_alm as tiny_alm
from tests.tiny_models import untrained_tiny_encodec as tiny_encodec

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A valid checkpoint folder of each codec."""
    root = tmp_path_factory.mktemp("good")
    return {
        "encodec": save_codec(tiny_encodec(), root / "encodec"),
        "almtokenizer": save_codec(tiny_alm(), root / "alm"),
    }


def copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def refused(path: Path, names: Path | str | None = None, match: str | None = None) -> str:
    """Assert `load_codec(path)` raises CheckpointError naming `names` (default: `path`)."""
    with pytest.raises(CheckpointError) as e:
        load_codec(path)
    msg = str(e.value)
    assert str(names if names is not None else path) in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


def sha(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# folder-level problems
# ------------------------------------------------------------------------------------------------
def test_missing_empty_and_file_paths(tmp_path: Path, good) -> None:
    refused(tmp_path / "nope", match="does not exist")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", match=CONFIG_NAME)
    f = tmp_path / "model.safetensors"
    shutil.copy(good["encodec"] / WEIGHTS_NAME, f)
    refused(f, match="is a file")
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    shutil.copy(good["encodec"] / CONFIG_NAME, only_cfg / CONFIG_NAME)
    refused(only_cfg, match=WEIGHTS_NAME)
    # config.json / model.safetensors that are folders
    odd = copy(good["encodec"], tmp_path / "odd")
    (odd / WEIGHTS_NAME).unlink()
    (odd / WEIGHTS_NAME).mkdir()
    refused(odd, match=WEIGHTS_NAME)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"\x00\x01\xff",
        b"{not json",
        b"[]",
        b'"str"',
        b"null",
        b"1e999",
        "{é".encode("latin-1"),
    ],
)
def test_config_not_json_or_not_an_object(tmp_path: Path, good, text: bytes) -> None:
    bad = copy(good["encodec"], tmp_path / "bad")
    (bad / CONFIG_NAME).write_bytes(text)
    refused(bad, bad / CONFIG_NAME)


@pytest.mark.parametrize("version", [None, 0, 2, "1", 1.5, [1], {"v": 1}, -1, 2**70])
def test_wrong_format_version(tmp_path: Path, good, version) -> None:
    bad = copy(good["encodec"], tmp_path / "bad")
    cfg = json.loads((bad / CONFIG_NAME).read_text())
    if version is None:
        del cfg["format_version"]
    else:
        cfg["format_version"] = version
    (bad / CONFIG_NAME).write_text(json.dumps(cfg))
    refused(bad, bad / CONFIG_NAME, match="format_version")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70) | st.floats(-1e3, 1e3) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@FUZZ
@given(
    which=st.sampled_from(["encodec", "almtokenizer"]),
    edits=st.lists(
        st.tuples(st.sampled_from(["codec", "model", "meta", "field"]), JSON), max_size=3
    ),
    field=st.integers(0, 100),
)
def test_config_json_fuzz(tmp_path: Path, good, which: str, edits, field: int) -> None:
    """Random JSON in `codec`, `model`, `meta` or one model field (small values only, so a
    model that does get built stays tiny): loads, or a CheckpointError naming config.json."""
    folder = copy(good[which], tmp_path / "fz")
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    for where, value in edits:
        if where == "field":
            target = cfg.get("model")
            if which == "almtokenizer" and isinstance(target, dict):
                target = target.get("base_args")
            if isinstance(target, dict) and target:
                key = sorted(target)[field % len(target)]
                target[key] = value
        else:
            cfg[where] = value
    (folder / CONFIG_NAME).write_text(json.dumps(cfg))
    try:
        model = load_codec(folder)
    except CheckpointError as e:
        assert str(folder) in str(e)
        return
    assert model.name == cfg["codec"]


def test_unknown_codec_and_missing_keys(tmp_path: Path, good) -> None:
    bad = copy(good["encodec"], tmp_path / "bad")
    cfg = json.loads((bad / CONFIG_NAME).read_text())
    for key, value in (("codec", "wavenet"), ("codec", ["encodec"]), ("codec", {"a": 1})):
        (bad / CONFIG_NAME).write_text(json.dumps({**cfg, key: value}))
        refused(bad, bad / CONFIG_NAME)
    for key in ("codec", "model"):
        (bad / CONFIG_NAME).write_text(json.dumps({k: v for k, v in cfg.items() if k != key}))
        refused(bad, bad / CONFIG_NAME, match=key)


def test_impossible_model_size_in_config_is_a_checkpoint_error(tmp_path: Path, good) -> None:
    """A config.json asking for a model that cannot be allocated (e.g. 2**40 channels)."""
    for which, key in (("encodec", "dimension"), ("encodec", "bins"), ("almtokenizer", "dim")):
        bad = copy(good[which], tmp_path / "bad")
        cfg = json.loads((bad / CONFIG_NAME).read_text())
        target = cfg["model"] if which == "encodec" else cfg["model"]["base_args"]
        target[key] = 2**40
        if which == "almtokenizer":
            target["ffn_dim"] = 2**40
        (bad / CONFIG_NAME).write_text(json.dumps(cfg))
        refused(bad, bad / CONFIG_NAME)


def test_absurd_loop_counts_in_config_refused_quickly(tmp_path: Path, good) -> None:
    bad = copy(good["encodec"], tmp_path / "bad")
    cfg = json.loads((bad / CONFIG_NAME).read_text())
    cfg["model"]["n_q"] = 10**9
    (bad / CONFIG_NAME).write_text(json.dumps(cfg))
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_CPU, (12, 12))  # imports alone take 3-4 s
        from codec.checkpoint import CheckpointError
        from codec.models.registry import load_codec
        try:
            load_codec({str(bad)!r})
        except CheckpointError as e:
            print("refused:", e)
            sys.exit(0)
        sys.exit(3)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        pytest.fail("load_codec did not refuse n_q=1e9 within 15 s")
    assert proc.returncode == 0 and "refused" in proc.stdout, proc.stderr[-500:]


# ------------------------------------------------------------------------------------------------
# weight files
# ------------------------------------------------------------------------------------------------
@FUZZ
@given(which=st.sampled_from(["encodec", "almtokenizer"]), frac=st.floats(0.0, 0.9999))
def test_truncated_safetensors(tmp_path: Path, good, which: str, frac: float) -> None:
    folder = copy(good[which], tmp_path / "cut")
    w = folder / WEIGHTS_NAME
    data = w.read_bytes()
    w.write_bytes(data[: int(len(data) * frac)])
    refused(folder, w)


@FUZZ
@given(
    which=st.sampled_from(["encodec", "almtokenizer"]),
    edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corrupted_safetensors_header(tmp_path: Path, good, which: str, edits) -> None:
    """Bytes of the length prefix / JSON header overwritten: loads (a harmless edit) or a
    CheckpointError naming the weights file; never another exception."""
    folder = copy(good[which], tmp_path / "flip")
    w = folder / WEIGHTS_NAME
    data = bytearray(w.read_bytes())
    for pos, byte in edits:
        data[pos % len(data)] = byte
    w.write_bytes(bytes(data))
    try:
        load_codec(folder)
    except CheckpointError as e:
        assert str(folder) in str(e)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_weights(tmp_path: Path, good, data: bytes) -> None:
    folder = copy(good["encodec"], tmp_path / "rnd")
    (folder / WEIGHTS_NAME).write_bytes(data)
    refused(folder, folder / WEIGHTS_NAME)


def safetensors_bytes(header: dict, payload: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + payload


@pytest.mark.parametrize(
    "blob",
    [
        struct.pack("<Q", 2**63) + b"{}",  # header length larger than the file
        struct.pack("<Q", 100_000_000) + b"{",  # 100 MB header claim on a 9-byte file
        safetensors_bytes({"w": {"dtype": "F32", "shape": [2**31, 2**31], "data_offsets": [0, 8]}}),
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 2**40]}}, b"\0" * 8
        ),
        safetensors_bytes({"w": {"dtype": "XX", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
        safetensors_bytes(
            {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, b"\0" * 8
        ),
        safetensors_bytes({"__metadata__": {"a": 1}}),
        safetensors_bytes([]),  # type: ignore[arg-type]
    ],
    ids=["len2^63", "len100MB", "shape2^62", "offset2^40", "dtype", "shape-1", "meta", "list"],
)
def test_hostile_safetensors_headers(tmp_path: Path, good, blob: bytes) -> None:
    """Headers claiming huge lengths/shapes/offsets are refused without allocating them."""
    folder = copy(good["encodec"], tmp_path / "hostile")
    (folder / WEIGHTS_NAME).write_bytes(blob)
    refused(folder, folder / WEIGHTS_NAME)


def test_mismatched_shapes_names_tensor_and_file(tmp_path: Path, good) -> None:
    """Weights of a differently sized model under this config."""
    for which, other in (
        ("encodec", tiny_encodec(dimension=8)),
        ("almtokenizer", tiny_alm(dim=64, ffn_dim=32)),
    ):
        bad = copy(good[which], tmp_path / f"shape_{which}")
        other_dir = save_codec(other, tmp_path / f"other_{which}")
        shutil.copy(other_dir / WEIGHTS_NAME, bad / WEIGHTS_NAME)
        msg = refused(bad, bad / WEIGHTS_NAME, match="shape mismatch")
        assert "file (" in msg and "model (" in msg
    # a tensor missing / an extra one
    from safetensors.torch import load_file, save_file

    bad = copy(good["encodec"], tmp_path / "missing")
    state = load_file(str(bad / WEIGHTS_NAME))
    first = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != first}, str(bad / WEIGHTS_NAME))
    assert first in refused(bad, bad / WEIGHTS_NAME, match="missing")
    save_file({**state, "evil.extra": torch.zeros(1)}, str(bad / WEIGHTS_NAME))
    assert "evil.extra" in refused(bad, bad / WEIGHTS_NAME, match="unexpected")


# ------------------------------------------------------------------------------------------------
# pickles: never unpickled
# ------------------------------------------------------------------------------------------------
class Boom:
    """Unpickling this creates `marker` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_pickles(marker: Path) -> dict[str, bytes]:
    out = {f"pickle_p{p}": pickle.dumps(Boom(marker), protocol=p) for p in range(6)}
    buf = io.BytesIO()
    torch.save({"weight": Boom(marker)}, buf)  # torch zip format with the payload inside
    out["torch_save_malicious"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"weight": Boom(marker)}, buf, _use_new_zipfile_serialization=False)
    out["torch_save_legacy_malicious"] = buf.getvalue()
    return out


def test_pickles_and_zips_as_model_safetensors(tmp_path: Path, good) -> None:
    marker = tmp_path / "PWNED"
    blobs = malicious_pickles(marker)
    buf = io.BytesIO()
    torch.save(tiny_encodec().state_dict(), buf)  # an honest torch.save of the right state dict
    blobs["torch_save_state_dict"] = buf.getvalue()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("model.safetensors", (good["encodec"] / WEIGHTS_NAME).read_bytes())
    blobs["zip"] = zbuf.getvalue()
    for name, blob in blobs.items():
        folder = copy(good["encodec"], tmp_path / name)
        (folder / WEIGHTS_NAME).write_bytes(blob)
        refused(folder, folder / WEIGHTS_NAME)
        assert not marker.exists(), f"{name}: the pickle payload ran"


def test_malicious_official_encodec_file_refused(tmp_path: Path, monkeypatch) -> None:
    """A pickle with a payload named like the official EnCodec weights: refused by the sha256
    check, and with the check off by `weights_only=True`; found via TORCH_HOME, too."""
    from codec.models.encodec import OFFICIAL_NAME, EnCodecWeightsError, load_encodec, load_official

    marker = tmp_path / "PWNED"
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    for name, blob in malicious_pickles(marker).items():
        f = hub / OFFICIAL_NAME
        f.write_bytes(blob)
        with pytest.raises(EnCodecWeightsError, match="sha256") as e:
            load_official(f)
        assert str(f) in str(e.value)
        with pytest.raises(EnCodecWeightsError) as e:
            load_official(f, check_hash=False)
        assert str(f) in str(e.value)
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
        with pytest.raises(EnCodecWeightsError):
            load_encodec()
        monkeypatch.delenv("TORCH_HOME")
        assert not marker.exists(), f"{name}: the pickle payload ran"


def test_malicious_file_for_the_encodec_frontend(tmp_path: Path) -> None:
    """The ALMTokenizer `encodec` front end reads the same official file: the payload must not
    run (weights_only=True). (It has no hash check and raises a raw UnpicklingError: reported.)"""
    from codec.models.almtokenizer.frontend_encodec import EncodecFrontend

    marker = tmp_path / "PWNED"
    for name, blob in malicious_pickles(marker).items():
        f = tmp_path / "encodec_24khz-d7cc33bc.th"
        f.write_bytes(blob)
        with pytest.raises(Exception):  # noqa: B017 - any refusal; the point is the marker
            EncodecFrontend(str(f))
        assert not marker.exists(), f"{name}: the pickle payload ran"


# ------------------------------------------------------------------------------------------------
# source scan: nothing can unpickle
# ------------------------------------------------------------------------------------------------
def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                yield node, f"{f.value.id}.{f.attr}"
            elif isinstance(f, ast.Attribute):
                yield node, f"?.{f.attr}"
            elif isinstance(f, ast.Name):
                yield node, f.id


def project_sources() -> list[Path]:
    skip = {".venv", "tests", ".git", "node_modules"}
    return [p for p in ROOT.rglob("*.py") if not (set(p.relative_to(ROOT).parts) & skip)]


UNSAFE = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "joblib.load", "dill.load", "dill.loads",
    "cloudpickle.load", "cloudpickle.loads", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
    "pd.read_pickle", "pandas.read_pickle", "marshal.load", "marshal.loads", "shelve.open",
    "eval", "exec",
}  # fmt: skip


def test_no_unpickling_anywhere_in_the_project() -> None:
    found = []
    for path in project_sources():
        tree = ast.parse(path.read_text(), str(path))
        for node, name in _calls(tree):
            rel = path.relative_to(ROOT).as_posix()
            if name in UNSAFE:
                found.append(f"{rel}:{node.lineno} {name}")
            if name.endswith(".load") and name.split(".")[0] in ("np", "numpy"):
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        found.append(f"{rel}:{node.lineno} np.load(allow_pickle=...)")
            if name == "torch.load":
                wo = [k for k in node.keywords if k.arg == "weights_only"]
                if not (wo and isinstance(wo[0].value, ast.Constant) and wo[0].value.value is True):
                    found.append(f"{rel}:{node.lineno} torch.load without weights_only=True")
            if name in ("subprocess.run", "subprocess.Popen", "subprocess.call", "os.system"):
                shell = [k for k in node.keywords if k.arg == "shell"]
                if name == "os.system" or (shell and getattr(shell[0].value, "value", 1)):
                    found.append(f"{rel}:{node.lineno} {name} through a shell")
    assert not found, found


def test_torch_load_only_in_the_hash_checked_official_encodec_loader() -> None:
    """Policy: one torch.load in the whole project, behind the sha256 check."""
    sites = []
    for path in project_sources():
        for node, name in _calls(ast.parse(path.read_text())):
            if name == "torch.load" or name.endswith("torch.load"):
                sites.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    allowed = [s for s in sites if s.startswith("codec/models/encodec.py:")]
    assert len(allowed) == 1, sites
    others = [s for s in sites if s not in allowed]
    assert not others, others
    src = (ROOT / "codec" / "models" / "encodec.py").read_text()
    # the hash check comes before the load in load_official
    body = src[src.index("def load_official") :]
    assert body.index("OFFICIAL_SHA256_PREFIX") < body.index("torch.load(")


# ------------------------------------------------------------------------------------------------
# save_codec faults
# ------------------------------------------------------------------------------------------------
def enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    "fail_at", ["save_file", "write_text", "fsync", "replace_old", "replace_new"]
)
def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch, fail_at):
    """ENOSPC at every step of `save_codec`: the error reaches the caller (errno intact), the
    previous folder is byte-identical and loadable, and no temporary folder is left behind."""
    folder = save_codec(tiny_encodec(), tmp_path / "ckpt", meta={"step": 1})
    before = sha(folder)
    newer = tiny_encodec(dimension=8)
    if fail_at == "save_file":
        monkeypatch.setattr(ck, "save_file", enospc)
    elif fail_at == "write_text":
        monkeypatch.setattr(Path, "write_text", enospc)
    elif fail_at == "fsync":
        monkeypatch.setattr(ck.os, "fsync", enospc)
    else:
        real = os.replace
        calls = []

        def flaky(src, dst):
            calls.append(1)
            if (fail_at == "replace_old" and len(calls) == 1) or (
                fail_at == "replace_new" and len(calls) == 2
            ):
                enospc()
            return real(src, dst)

        monkeypatch.setattr(ck.os, "replace", flaky)
    with pytest.raises(OSError) as e:
        save_codec(newer, folder, meta={"step": 2})
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sha(folder) == before, f"{fail_at}: previous checkpoint changed or lost"
    assert load_codec(folder).checkpoint_meta == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], list(tmp_path.iterdir())


def test_sigkill_during_save_codec_leaves_old_or_new(tmp_path: Path) -> None:
    """A process killed (SIGKILL, from inside, at each step of save_codec) leaves either the
    previous or the new checkpoint under its name, loadable."""
    folder = save_codec(tiny_encodec(), tmp_path / "ckpt", meta={"step": 1})
    script = textwrap.dedent("""
        import os, signal, sys
        import codec.checkpoint as ck
        from tests.tiny_models import untrained_tiny_encodec as tiny_encodec
        point, n = sys.argv[1], int(sys.argv[2])
        calls = []
        def killer(real):
            def f(*a, **k):
                calls.append(1)
                if len(calls) == n:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(*a, **k)
            return f
        if point == "replace":
            ck.os.replace = killer(os.replace)
        elif point == "save_file":
            ck.save_file = killer(ck.save_file)
        elif point == "fsync":
            ck.os.fsync = killer(os.fsync)
        ck.save_codec(tiny_encodec(dimension=8), sys.argv[3], meta={"step": 2})
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    outcomes = []
    for point, n in (("save_file", 1), ("fsync", 1), ("fsync", 2), ("replace", 1), ("replace", 2)):
        proc = subprocess.run(
            [sys.executable, "-c", script, point, str(n), str(folder)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == -9, (point, n, proc.stderr[-2000:])
        if not folder.exists():
            outcomes.append(f"{point}#{n}: gone")
            leftovers = sorted(p.name for p in tmp_path.iterdir())
            old = [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.old")]
            assert old, leftovers
            # load_codec (read_config) puts the killed process's .ckpt.old-<pid> back
            assert load_codec(folder).checkpoint_meta["step"] == 1, leftovers
            assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
            continue
        outcomes.append(f"{point}#{n}: step {load_codec(folder).checkpoint_meta['step']}")
    # only a kill between the two renames can leave the name empty (the old folder survives
    # under .ckpt.old-<pid>, and the next load or save renames it back)
    assert all("gone" not in o for o in outcomes if not o.startswith("replace#2")), outcomes
