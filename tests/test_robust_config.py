"""Robustness of the training configuration: every bad config is a `ConfigError` that names the
key (or the file), raised before any work; the CLI exits non-zero with a one-line readable
message on stderr, never a traceback.

Property-based: random edits of configs/demo.yaml (unknown keys at every level, wrong-typed values
for every leaf, empty lists, list-length mismatches, deleted sections) and random override
strings; plus missing / directory / binary / non-mapping / invalid-YAML files through the CLI.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.training.config import ConfigError, TrainConfig, apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
DEMO: dict = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def leaves(d: Any, prefix: tuple = ()) -> list[tuple]:
    """Dotted paths of every leaf (and of every list) in the demo config."""
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += leaves(v, (*prefix, k))
        if prefix:
            out.append(prefix)
    elif isinstance(d, list):
        out.append(prefix)
    else:
        out.append(prefix)
    return out


def sections(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(d, dict):
        for k, v in d.items():
            if isinstance(v, dict):
                out += sections(v, (*prefix, k))
    return out


LEAVES = sorted(set(leaves(DEMO)))
SECTIONS = sections(DEMO)
# model.base_args / mae_args are free-form mappings checked by ALMConfig (its messages carry
# the inner key, e.g. "model.base_args.dim: ...")
WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
    st.text(max_size=6), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)  # fmt: skip


def get(d: dict, path: tuple) -> Any:
    for k in path:
        d = d[k]
    return d


def put(d: dict, path: tuple, value: Any) -> None:
    get(d, path[:-1])[path[-1]] = value


def key_of(message: str) -> str:
    return message.split(":", 1)[0]


def related(err_key: str, path: tuple) -> bool:
    """The error names the edited key, one of its parents/children, or (for cross-field checks
    such as list lengths or stage-2 requirements) a sibling in the same section."""
    dotted = ".".join(str(p) for p in path)
    base = err_key.split("[", 1)[0]
    if base == "config" or not base:
        return len(path) == 1
    if base.startswith(dotted) or dotted.startswith(base):
        return True
    return base.split(".")[0] == str(path[0])


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(LEAVES + SECTIONS), st.sampled_from(["wrong", "unknown", "del"]), WRONG
        ),
        min_size=1,
        max_size=3,
    )
)
def test_random_edits_give_config_errors_naming_the_key(edits) -> None:
    raw = copy.deepcopy(DEMO)
    first = None
    for path, action, value in edits:
        try:
            target = get(raw, path)
        except (KeyError, TypeError):
            continue
        if action == "unknown" and isinstance(target, dict):
            target["zz_unknown"] = value
            path = (*path, "zz_unknown")
        elif action == "del" and path:
            try:
                del get(raw, path[:-1])[path[-1]]
            except (KeyError, TypeError):
                continue
        elif path:
            put(raw, path, value)
        else:
            continue
        first = first or path
    try:
        TrainConfig.from_dict(raw, check_paths=False)
    except ConfigError as e:
        msg = str(e)
        assert first is not None, msg
        edited = [p for p, _, _ in edits if p]
        assert any(related(key_of(msg), p) for p in edited), (msg, edited)
        assert "\n" not in msg.split(":", 1)[0]


@FUZZ
@given(
    path=st.sampled_from([p for p in LEAVES if p and p[0] != "model"]),
    text=st.one_of(
        st.text(max_size=10),
        st.sampled_from(
            ["[1", "{a: ", "!!python/object:os.system 'x'", "&a [*a]", ".nan", "~", ""]
        ),
    ),
)
def test_random_overrides(path: tuple, text: str) -> None:
    """`key.path=<any text>`: a valid config or a ConfigError naming that key; never a YAML
    tag that builds Python objects."""
    dotted = ".".join(path)
    try:
        cfg = TrainConfig.from_dict(apply_overrides(DEMO, [f"{dotted}={text}"]), check_paths=False)
    except ConfigError as e:
        assert related(key_of(str(e)), path), (str(e), dotted)
        return
    assert isinstance(cfg, TrainConfig)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("discriminator", "hop_lengths", [64, 128]), "discriminator.hop_lengths"),
        (("discriminator", "win_lengths", [256]), "discriminator.win_lengths"),
        (("discriminator", "n_mels", [48, 64, 80, 80]), "discriminator.n_mels"),
        (("discriminator", "n_fft", []), "discriminator.n_fft"),
        (("training", "betas", []), "training.betas"),
        (("training", "mel_scales", []), "training.mel_scales"),
        (("training", "mel_scales", [[512, 128]]), "training.mel_scales[0]"),
        (("training", "eval_windows", []), "training.eval_windows"),
        (("discriminator", "dilations", ["x"]), "discriminator.dilations[0]"),
        (("training", "lambdas", {"mel": "lots"}), "training.lambdas.mel"),
        (("dataloader", "batch_size", 2.5), "dataloader.batch_size"),
        (("dataloader", "batch_size", True), "dataloader.batch_size"),
        (("training", "amp", "yes"), "training.amp"),
        (("model", "type", "wavenet"), "model.type"),
        (("dataloader", "nsecs", ".nan"), "dataloader.nsecs"),
    ],
)
def test_list_and_type_errors_name_the_key(edit, key) -> None:
    raw = copy.deepcopy(DEMO)
    put(raw, edit[:-1], edit[-1])
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(raw, check_paths=False)
    assert str(e.value).startswith(key + ":"), str(e.value)


@pytest.mark.parametrize(
    "path",
    [("dataloader", "nsecs"), ("training", "lr_generator"), ("training", "lambdas", "mel")],
)
def test_non_finite_floats_refused(path) -> None:
    """`nsecs: .inf` crashes the data loader with an OverflowError after start-up."""
    raw = copy.deepcopy(DEMO)
    put(raw, path, float("inf"))
    with pytest.raises(ConfigError, match=r"^" + ".".join(path)):
        TrainConfig.from_dict(raw, check_paths=False)


@pytest.mark.parametrize("edit", [("seed", 2**70), ("device", "cuda:abc"), ("device", "cudax")])
def test_seed_and_device_values_refused(edit) -> None:
    raw = copy.deepcopy(DEMO)
    raw["training"][edit[0]] = edit[1]
    with pytest.raises(ConfigError, match=rf"^training\.{edit[0]}"):
        TrainConfig.from_dict(raw, check_paths=False)


def test_missing_paths_named(tmp_path: Path) -> None:
    raw = copy.deepcopy(DEMO)
    raw["dataloader"]["dataset_path"] = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"^dataloader\.dataset_path: .*nope"):
        TrainConfig.from_dict(raw)
    raw = copy.deepcopy(DEMO)
    raw["training"].update(stage=2, stage1_checkpoint=str(tmp_path / "s1"))
    with pytest.raises(ConfigError, match=r"^training\.stage1_checkpoint: .*s1"):
        TrainConfig.from_dict(raw)
    raw = copy.deepcopy(DEMO)
    (tmp_path / "file").write_text("x")
    raw["training"]["start_checkpoint"] = str(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"^training\.start_checkpoint: "):
        TrainConfig.from_dict(raw)


# ------------------------------------------------------------------------------------------------
# the CLI
# ------------------------------------------------------------------------------------------------
def run_cli(config: Path | str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codec.training", "--config", str(config), *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def bad_files(tmp: Path) -> list[tuple[Path, list[str], str]]:
    """(config file, overrides, text the stderr must contain)."""

    def y(name: str, raw: Any) -> Path:
        p = tmp / name
        p.write_text(yaml.safe_dump(raw))
        return p

    def edited(name: str, path: tuple, value: Any) -> Path:
        raw = copy.deepcopy(DEMO)
        put(raw, path, value)
        return y(name, raw)

    (tmp / "invalid.yaml").write_text("model: [unclosed\n  - x: {")
    (tmp / "a_dir.yaml").mkdir()
    (tmp / "python_tag.yaml").write_text("model: !!python/object/apply:os.system ['touch PWNED']\n")
    unknown = copy.deepcopy(DEMO)
    unknown["training"]["lambdas"]["mell"] = 1.0
    return [
        (tmp / "missing.yaml", [], "missing.yaml"),
        (tmp / "a_dir.yaml", [], "a_dir.yaml"),
        (tmp / "invalid.yaml", [], "invalid.yaml"),
        (tmp / "python_tag.yaml", [], "python_tag.yaml"),
        (y("list.yaml", [1, 2]), [], "list.yaml"),
        (y("unknown.yaml", unknown), [], "training.lambdas.mell"),
        (edited("type.yaml", ("dataloader", "batch_size"), "big"), [], "dataloader.batch_size"),
        (edited("empty.yaml", ("discriminator", "n_fft"), []), [], "discriminator.n_fft"),
        (edited("mismatch.yaml", ("discriminator", "win_lengths"), [256]), [],
         "discriminator.win_lengths"),
        (edited("nodata.yaml", ("dataloader", "dataset_path"), str(tmp / "nodata")), [],
         "dataloader.dataset_path"),
        (ROOT / "configs" / "demo.yaml", ["training.betas=[0.5]"], "training.betas"),
        (ROOT / "configs" / "demo.yaml", ["training.num_epochs"], "training.num_epochs"),
    ]  # fmt: skip


def test_cli_exits_nonzero_with_a_readable_message(tmp_path: Path) -> None:
    """One subprocess per bad config; each exits 2 with `error: <key or file>: ...` on stderr,
    no traceback, and creates no output folders and no PWNED file."""
    cases = bad_files(tmp_path)
    # every case in one interpreter start: a driver calls codec.training.cli.main per config
    driver = textwrap.dedent("""
        import contextlib, io, json, sys
        from codec.training.cli import main
        out = []
        for cfg, extra in json.loads(sys.argv[1]):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                try:
                    code = main(["--config", cfg, *extra])
                except SystemExit as e:
                    code = e.code
            out.append([code, err.getvalue()])
        print(json.dumps(out))
    """)
    import json

    arg = json.dumps([[str(c), extra] for c, extra, _ in cases])
    proc = subprocess.run(
        [sys.executable, "-c", driver, arg],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (cfg, extra, want), (code, err) in zip(cases, results, strict=True):
        assert code not in (0, None), (cfg.name, extra, err)
        assert want in err, (cfg.name, extra, err)
        assert "Traceback" not in err, (cfg.name, err)
        assert err.startswith("error: "), err
        assert len(err.strip().splitlines()) <= 12, err  # a message (YAML adds its context)
    assert not (tmp_path / "PWNED").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["a_dir.yaml"]


def test_cli_real_process_exit_code(tmp_path: Path) -> None:
    """The same through a real `python -m codec.training` process (exit status, stderr)."""
    proc = run_cli(tmp_path / "nope.yaml")
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert "nope.yaml" in proc.stderr and "Traceback" not in proc.stderr


def test_yaml_alias_bomb_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    lines.append("training: {eval_windows: *a7}")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines))
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_CPU, (15, 15)); "
        "from codec.training.config import load_config, ConfigError\n"
        f"try:\n load_config({str(bomb)!r}, check_paths=False)\n"
        "except ConfigError as e:\n print('refused', e)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and "refused" in proc.stdout, proc.stderr[-300:]


def test_binary_config_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "binary.yaml"
    p.write_bytes(b"\x00\xff\xfe\x80garbage")
    with pytest.raises(ConfigError, match="binary.yaml"):
        load_config(p, check_paths=False)


def test_load_config_is_safe_yaml(tmp_path: Path) -> None:
    p = tmp_path / "tag.yaml"
    p.write_text("model: !!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(ConfigError, match="tag.yaml"):
        load_config(p, check_paths=False)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
