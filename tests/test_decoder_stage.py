"""The decoder stage (`training.stage: 3`): a trained codec's encoder and quantizer stay frozen,
so its codes never change, while everything after the quantizer trains on its own tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from bench import val_score
from codec.checkpoint import CheckpointError
from codec.models.almtokenizer import ALMTokenizer
from codec.models.encodec import EnCodecCodec
from codec.models.registry import load_codec
from codec.models.vocos import VocosDecoder
from codec.training.config import ConfigError
from codec.training.evaluation import eval_windows
from codec.training.loop import train
from codec.training.model_setup import build_model, trainable_parameters
from tests.fixtures import make_goodsounds
from tests.tiny_models import TINY_VOCOS
from tests.train_configs import alm_stage2, tiny_config, tiny_raw

torch.set_num_threads(1)

# the stage-3 run: a high learning rate so that one step visibly moves the decoder
STAGE3 = ("training.stage=3", "training.max_steps=2", "training.lr_generator=1e-2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny EnCodec (stage 2) and a tiny ALMTokenizer (stage 2 on its autoencoder)."""
    tmp = tmp_path_factory.mktemp("stage3")
    data = tmp / "good-sounds"
    make_goodsounds(data, seconds=0.5)
    ae = train(tiny_config(data, tmp / "ae", "training.max_steps=1")).final_dir
    enc = train(
        tiny_config(data, tmp / "enc", "training.stage=2", f"training.start_checkpoint={ae}")
    ).final_dir
    alm = train(tiny_config(data, tmp / "alm", *alm_stage2(ae))).final_dir
    return {"data": data, "autoencoder": ae, "encodec": enc, "almtokenizer": alm}


def _stage3(trained: dict[str, Path], name: str, out: Path, *extra: str):
    start = trained[name]
    # stage 3 takes the architecture from the start checkpoint: no base_args needed
    return tiny_config(
        trained["data"], out, f"model.type={name}", "model.base_args={}", "model.preset=null",
        f"training.start_checkpoint={start}", *STAGE3, *extra,
    )  # fmt: skip


def _codes(path: Path, wav: torch.Tensor) -> torch.Tensor:
    model = load_codec(path)
    window = 4 if model.setting().kind == "window" else None
    return model.encode(wav, window).codes


@pytest.mark.parametrize("name", ["encodec", "almtokenizer"])
def test_decoder_stage_trains_after_the_quantizer_and_keeps_every_code(
    trained: dict[str, Path], tmp_path: Path, name: str
) -> None:
    cfg = _stage3(trained, name, tmp_path)
    model = build_model(cfg)
    trained_names = {n for n, p in model.named_parameters() if p.requires_grad}
    params = trainable_parameters(model, cfg)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert len(params) == len(names) > 0
    if name == "encodec":
        assert all(n.startswith("decoder.") for n in names)
    else:
        roots = {n.split(".")[0] for n in names}
        assert roots == {"mask_token", "decoder", "frame_out", "frontend"}
        assert all(n.startswith("frontend.decoder.") for n in names if n.startswith("frontend"))
    assert names != trained_names  # the encoder side was trainable before the stage froze it

    before = load_codec(trained[name]).state_dict()
    wav = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0)) * 0.1
    final = train(cfg).final_dir
    after = load_codec(final).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all(any(k.startswith(n.rsplit(".", 1)[0]) for n in names) for k in changed), changed
    assert torch.equal(_codes(trained[name], wav), _codes(final, wav))


def test_decoder_stage_needs_a_trained_codec(trained: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.start_checkpoint: stage 3"):
        tiny_config(trained["data"], tmp_path, "training.stage=3")
    cfg = _stage3(trained, "almtokenizer", tmp_path)
    cfg.training.start_checkpoint = str(trained["encodec"])
    with pytest.raises(ConfigError, match=r"holds a 'encodec' model, not model.type"):
        build_model(cfg)


def test_decoder_stage_builds_the_start_checkpoints_architecture(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """The YAML's model section may be a different preset: stage 3 rebuilds what the start
    checkpoint holds, with model.base_args merged over it."""
    cfg = _stage3(trained, "almtokenizer", tmp_path, "model.preset=paper")
    saved = load_codec(trained["almtokenizer"])
    model = build_model(cfg)
    assert model.config_dict() == {
        **saved.config_dict(),
        "base_args": {**saved.config_dict()["base_args"], "frontend_checkpoint": None},
    }


def test_decoder_stage_scores_encodec_at_every_bandwidth(trained: dict[str, Path]) -> None:
    enc = load_codec(trained["encodec"])
    assert eval_windows(enc, 3, [3, 6]) == list(enc.setting().choices)
    assert eval_windows(enc, 2, [3, 6]) == [None]
    alm = load_codec(trained["almtokenizer"])
    assert eval_windows(alm, 3, [3, 6]) == [3, 6]


def test_a_grown_mask_token_decoder_starts_as_the_trained_one(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """decoder_n_layers above the checkpoint's: the added blocks are identities, so the grown
    model reconstructs exactly as the trained one before any step; more layers than it had are
    the only mismatch tolerated."""
    start = trained["almtokenizer"]
    saved = load_codec(start)
    n = saved.config.base_args.decoder_n_layers
    cfg = _stage3(
        trained, "almtokenizer", tmp_path, f"model.base_args={{decoder_n_layers: {n + 2}}}"
    )
    model = build_model(cfg).eval()
    added = model.load_start_state(saved.state_dict(), str(start))
    assert added and all(
        k.startswith((f"decoder.blocks.{n}.", f"decoder.blocks.{n + 1}.")) for k in added
    )
    wav = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        assert torch.allclose(model.reconstruct(wav, 4), saved.reconstruct(wav, 4), atol=1e-5)
    with pytest.raises(Exception, match="missing"):
        saved.load_start_state(
            {k: v for k, v in model.state_dict().items() if "frame_out" not in k}, "x"
        )


def test_stage2_continues_a_checkpoint_with_the_mae_branch_switched_on(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """A stage-2 run from a checkpoint trained without the MAE branch, with it on: only the
    branch's tensors start fresh (the rest loads strictly, so the model reconstructs as the
    checkpoint did), a step trains it, and a checkpoint holding part of a branch is refused."""
    from codec.checkpoint import save_codec
    from codec.models.almtokenizer import ALMConfig, ALMTokenizer
    from codec.training.loop import Trainer

    with_mae = load_codec(trained["almtokenizer"])
    assert with_mae.mae is not None
    plain_cfg = ALMConfig.from_dict(
        {
            **with_mae.config.to_dict(),
            "mae_args": {**with_mae.config.mae_args.__dict__, "n_layers": 0},
        }
    )
    plain = ALMTokenizer(plain_cfg)
    plain.load_state_dict(
        {k: v for k, v in with_mae.state_dict().items() if not k.startswith("mae.")}
    )
    start = save_codec(plain.eval(), tmp_path / "no_mae")

    cfg = tiny_config(
        trained["data"], tmp_path / "run", *alm_stage2(trained["autoencoder"]),
        f"training.start_checkpoint={start}", "training.max_steps=1",
    )  # fmt: skip
    trainer = Trainer(cfg)
    model = trainer.model
    assert model.mae is not None
    fresh = {k for k in model.state_dict() if k.startswith("mae.")}
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("mae.")}
    wav = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        assert torch.allclose(
            model.eval().reconstruct(wav, 4), plain.reconstruct(wav, 4), atol=1e-5
        )
    assert fresh and set(model.load_start_state(plain.state_dict(), "x")) == fresh
    trainer.run()
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)

    partial = {k: v for k, v in with_mae.state_dict().items() if k != sorted(fresh)[0]}
    with pytest.raises(Exception, match="missing"):
        model.load_start_state(partial, "partial")


def test_decoder_stage_swaps_in_a_fresh_vocos_and_keeps_every_code(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    start = trained["encodec"]
    cfg = tiny_config(
        trained["data"], tmp_path, "model.type=encodec", "model.preset=null",
        f"model.base_args={{decoder: vocos, vocos: {TINY_VOCOS}}}",
        f"training.start_checkpoint={start}", "training.stage=3", "training.max_steps=2",
    )  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model.decoder, VocosDecoder)
    trainable_parameters(model, cfg)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("decoder.") for n in names)

    final = train(cfg).final_dir
    seanet, vocos = load_codec(start), load_codec(final)
    assert isinstance(vocos, EnCodecCodec) and vocos.config.decoder == "vocos"
    wav = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0)) * 0.1
    for bw in vocos.config.target_bandwidths:
        seanet.set_bandwidth(bw)
        vocos.set_bandwidth(bw)
        codes = vocos.encode(wav).codes
        assert torch.equal(seanet.encode(wav).codes, codes)
        out = vocos.decode(vocos.codes_to_latents(codes), num_samples=4800)
        assert out.shape == (1, 1, 4800) and torch.isfinite(out).all()


def test_vocos_start_state_is_strict_outside_the_decoder(trained: dict[str, Path]) -> None:
    seanet = load_codec(trained["encodec"])
    config = {**seanet.config_dict(), "decoder": "vocos", "vocos": TINY_VOCOS}
    model = EnCodecCodec(config)
    state = seanet.state_dict()
    added = model.load_start_state(state, "start")
    assert added and all(k.startswith("decoder.") for k in added)
    assert torch.equal(model.encoder.state_dict()["model.0.conv.conv.bias"],
                       state["encoder.model.0.conv.conv.bias"])  # fmt: skip
    broken = {k: v for k, v in state.items() if not k.startswith("encoder.model.0")}
    with pytest.raises(CheckpointError, match="start"):
        EnCodecCodec(config).load_start_state(broken, "start")


def test_alm_decoder_stage_swaps_in_a_fresh_vocos_told_the_window(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    start = trained["almtokenizer"]
    freeze = "[mask_token, decoder., frame_out.]"
    cfg = _stage3(
        trained, "almtokenizer", tmp_path,
        f"model.base_args={{acoustic_decoder: vocos, vocos: {TINY_VOCOS}}}",
        f"training.freeze={freeze}", "training.lambdas.latent=0.0",
    )  # fmt: skip
    model = build_model(cfg)
    assert isinstance(model.frontend.decoder, VocosDecoder)
    trainable_parameters(model, cfg)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith("frontend.decoder.") for n in names)

    final = train(cfg).final_dir
    seanet, vocos = load_codec(start), load_codec(final)
    assert vocos.config.base_args.acoustic_decoder == "vocos"
    saved = seanet.state_dict()
    for k, v in vocos.state_dict().items():  # only the acoustic decoder changed
        if not k.startswith("frontend.decoder."):
            assert torch.equal(v, saved[k]), k
    wav = torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0)) * 0.1
    outs = {}
    for w in (2, 4):
        codes = vocos.encode(wav, w).codes
        assert torch.equal(seanet.encode(wav, w).codes, codes)
        outs[w] = vocos.decode(vocos.codes_to_latents(codes), w, num_samples=4800)
        assert outs[w].shape == (1, 1, 4800) and torch.isfinite(outs[w]).all()
    # the window reaches the decoder's adaptive norms: setting w - 1 and no other
    tokens = vocos.encode(wav, 4).quantized
    before = {w: vocos.decode(tokens, w, num_samples=4800) for w in (3, 4)}
    with torch.no_grad():
        vocos.frontend.decoder.norm.shift.weight[3] += 1.0
    assert torch.equal(vocos.decode(tokens, 3, num_samples=4800), before[3])
    assert not torch.allclose(vocos.decode(tokens, 4, num_samples=4800), before[4])


def _alm_with_vocos(trained: dict[str, Path]) -> tuple[ALMTokenizer, dict]:
    """The trained tiny ALMTokenizer (SEANet) and its config with a Vocos acoustic decoder."""
    seanet = load_codec(trained["almtokenizer"])
    config = seanet.config_dict()
    config["base_args"].update(acoustic_decoder="vocos", vocos=TINY_VOCOS)
    return seanet, config


def test_alm_vocos_start_state_is_strict_outside_the_acoustic_decoder(
    trained: dict[str, Path],
) -> None:
    seanet, config = _alm_with_vocos(trained)
    state = seanet.state_dict()
    model = ALMTokenizer.from_config(config)
    added = model.load_start_state(state, "start")
    assert added and all(k.startswith("frontend.decoder.") for k in added)
    assert torch.equal(model.frame_out.weight, state["frame_out.weight"])
    broken = {k: v for k, v in state.items() if k != "frame_out.weight"}
    with pytest.raises(CheckpointError, match="start"):
        ALMTokenizer.from_config(config).load_start_state(broken, "start")
    # a Vocos checkpoint loads strictly: its own decoder, nothing fresh
    trained_vocos = model.state_dict()
    again = ALMTokenizer.from_config(config)
    assert again.load_start_state(trained_vocos, "vocos") == []
    partial = {k: v for k, v in trained_vocos.items() if not k.endswith("head.weight")}
    with pytest.raises(CheckpointError, match="vocos"):
        ALMTokenizer.from_config(config).load_start_state(partial, "vocos")


def test_an_alm_vocos_config_takes_only_the_encoder_from_an_encodec_autoencoder(
    trained: dict[str, Path],
) -> None:
    _, config = _alm_with_vocos(trained)
    model = ALMTokenizer.from_config(config)
    fresh = {k: v.clone() for k, v in model.frontend.decoder.state_dict().items()}
    model.frontend.load_from_encodec(load_codec(trained["autoencoder"]), "ae")
    assert all(torch.equal(v, fresh[k]) for k, v in model.frontend.decoder.state_dict().items())
    assert torch.equal(
        model.frontend.encoder.state_dict()["model.0.conv.conv.bias"],
        load_codec(trained["autoencoder"]).encoder.state_dict()["model.0.conv.conv.bias"],
    )


def test_val_score_scores_a_checkpoint_on_a_configs_held_out_clips(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_raw(trained["data"], tmp_path)
    out, ckpt = tmp_path / "s.json", str(trained["encodec"])
    raw["training"].update(stage=3, start_checkpoint=ckpt)  # scored at each bandwidth
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert val_score.main(["--config", str(config), "--checkpoint", ckpt, "--json", str(out)]) == 0
    s = json.loads(out.read_text())[ckpt]
    bandwidths = load_codec(ckpt).setting().choices
    assert {f"eval/mel_distance_{bw:g}kbps" for bw in bandwidths} <= set(s), sorted(s)
    assert s["eval/score"] == pytest.approx(
        s["eval/mel_distance"] + 1.0 - s.get("eval/pitch_kept", 1.0)
    )
    assert ckpt in capsys.readouterr().out
    assert val_score.main(["--config", str(config), "--checkpoint", ckpt, "training.lr=1"]) == 2
    assert "training.lr: unknown key" in capsys.readouterr().err


def test_decoder_stage_warm_starts_a_vocos_decoder_for_one_more_bandwidth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """configs/decoder_encodec_vocos_4bw.yaml's path: a stage-3 run whose base_args add
    0.75 kbps to a Vocos decoder trained for [1.5, 3, 6] starts each trained bandwidth's norm
    rows from the checkpoint by value and 0.75's from 1.5's (logged), then trains at all four."""
    data = tmp_path / "gs"
    make_goodsounds(data, seconds=0.5)
    three, four = [1.5, 3.0, 6.0], [0.75, 1.5, 3.0, 6.0]
    torch.manual_seed(0)
    old = EnCodecCodec({"dimension": 16, "n_filters": 4, "lstm": 0, "n_q": 8, "decoder": "vocos",
                        "vocos": TINY_VOCOS, "target_bandwidths": three,
                        "train_bandwidths": three})  # fmt: skip
    norms = [k for k in old.state_dict() if k.endswith((".scale.weight", ".shift.weight"))]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct rows per bandwidth (fresh ones are all ones / zeros)
        for k in norms:
            old.get_parameter(k).copy_(torch.randn(old.get_parameter(k).shape, generator=g))
    start = old.save_pretrained(tmp_path / "start")
    cfg = tiny_config(
        data, tmp_path / "run", "model.type=encodec", "model.preset=null",
        f"model.base_args={{target_bandwidths: {four}, train_bandwidths: {four}}}",
        f"training.start_checkpoint={start}", "training.stage=3", "training.max_steps=2",
    )  # fmt: skip
    with caplog.at_level("INFO"):
        new = load_codec(train(cfg).final_dir)
    assert "0.75 (from 1.5) initialised from the nearest" in caplog.text
    assert isinstance(new, EnCodecCodec) and new.config.target_bandwidths == four
    trained, started = new.state_dict(), old.state_dict()
    for k in norms:  # two small steps since: each row still near the one it started from
        assert trained[k].shape[0] == 4
        torch.testing.assert_close(trained[k][1:], started[k], atol=0.05, rtol=0)
        torch.testing.assert_close(trained[k][0], started[k][0], atol=0.05, rtol=0)


def test_the_four_bandwidth_vocos_config_is_the_vocos_config_plus_0p75_kbps() -> None:
    """configs/decoder_encodec_vocos_4bw.yaml differs from decoder_encodec_vocos.yaml only in its
    bandwidths and paths, and builds a [0.75, 1.5, 3, 6] model over its start checkpoint."""
    from codec.training.config import load_config

    repo = Path(__file__).resolve().parents[1]
    three = yaml.safe_load((repo / "configs/decoder_encodec_vocos.yaml").read_text())
    four = yaml.safe_load((repo / "configs/decoder_encodec_vocos_4bw.yaml").read_text())
    bws = [0.75, 1.5, 3.0, 6.0]
    assert four["model"]["base_args"] == {
        "target_bandwidths": bws, "train_bandwidths": bws, "decoder": "vocos",
    }  # fmt: skip
    paths = ("start_checkpoint", "writer_dir", "checkpoint_dir")
    for raw in (three, four):
        raw["model"]["base_args"] = None
        for key in paths:
            raw["training"].pop(key)
    assert four == three
    cfg = load_config(repo / "configs/decoder_encodec_vocos_4bw.yaml", check_paths=False)
    if Path(cfg.training.start_checkpoint).is_dir():  # the bundled placeholder
        model = build_model(cfg)
        assert isinstance(model, EnCodecCodec) and model.config.target_bandwidths == bws
        assert model.config.codebooks_for(0.75) == 1
