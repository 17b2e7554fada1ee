"""The one config mechanism (`codec.schema`): the training config, `ALMConfig` and
`EnCodecConfig` report unknown keys, wrong types and bad values the same way, with the dotted
key of the component, prefixed by where the component sits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from codec.models.almtokenizer import ALMConfig
from codec.models.encodec import EnCodecConfig
from codec.schema import ConfigError, ConfigTypeError, build_dataclass, config_section
from codec.training.config import TrainConfig


def error(fn, *args) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


def train(model: dict) -> TrainConfig:
    return TrainConfig.from_dict({"model": model}, check_paths=False)


def test_typos_read_the_same_in_every_config() -> None:
    assert error(ALMConfig.from_dict, {"base_args": {"n_layer": 2}}) == (
        "base_args.n_layer: unknown key (did you mean 'n_layers'?)"
    )
    assert error(EnCodecConfig.from_dict, {"n_filterz": 8}) == (
        "n_filterz: unknown key (did you mean 'n_filters'?)"
    )
    assert error(train, {"type": "almtokenizer", "base_args": {"n_layer": 2}}) == (
        "model.base_args.n_layer: unknown key (did you mean 'n_layers'?)"
    )
    assert error(train, {"type": "encodec", "base_args": {"n_filterz": 8}}) == (
        "model.base_args.n_filterz: unknown key (did you mean 'n_filters'?)"
    )


def test_value_rules_name_the_nested_key() -> None:
    bad_dim = {"base_args": {"dim": 250, "n_heads": 4}}
    assert error(ALMConfig.from_dict, bad_dim).startswith("base_args.dim: 250 must split")
    assert error(train, {"type": "almtokenizer", "preset": "demo", **bad_dim}).startswith(
        "model.base_args.dim: 250 must split"
    )
    assert error(EnCodecConfig.from_dict, {"n_q": 65}).startswith("n_q: must be in [1, 64]")
    assert error(train, {"type": "encodec", "base_args": {"n_q": 65}}).startswith(
        "model.base_args.n_q: must be in [1, 64]"
    )
    assert error(ALMConfig.from_dict, {"mae_args": {"mask_ratio": 1.5}}, "model").startswith(
        "model.mae_args.mask_ratio: must be in [0, 1)"
    )


def test_types_and_floats_follow_one_rule() -> None:
    # numeric strings are floats (YAML 1.1 reads 1e-4 as a string), in every config
    assert ALMConfig.from_dict({"mae_args": {"mask_ratio": "2e-1"}}).mae_args.mask_ratio == 0.2
    assert EnCodecConfig.from_dict({"decay": "9.9e-1"}).decay == 0.99
    assert error(ALMConfig.from_dict, {"base_args": {"ema_decay": float("nan")}}) == (
        "base_args.ema_decay: must be a finite number, got nan"
    )
    assert (
        error(EnCodecConfig.from_dict, {"decay": "inf"})
        == "decay: must be a finite number, got inf"
    )
    # a wrong type is a ConfigError that is also a TypeError (callers catching either work)
    with pytest.raises(ConfigTypeError, match=r"^ratios: expected list of int, got int 4$"):
        EnCodecConfig.from_dict({"ratios": 4})
    with pytest.raises(TypeError, match=r"^base_args\.causal: expected bool"):
        ALMConfig.from_dict({"base_args": {"causal": 1}})


@dataclass
class _Inner:
    low: float = 0.0
    high: float = 1.0

    def validate(self) -> None:
        if self.low > self.high:
            raise ConfigError(f"low: {self.low} > high {self.high}")


@dataclass
class _Outer:
    inner: list[_Inner] = field(default_factory=list)
    span: float | None = None


def test_builder_runs_validate_hooks_with_the_component_path() -> None:
    ok = build_dataclass(_Outer, {"inner": [{"low": 1}], "span": 2})
    assert ok.inner[0].low == 1.0 and ok.span == 2.0
    raw = {"inner": [{}, {"low": 3, "high": 2}]}
    assert error(build_dataclass, _Outer, raw) == "inner[1].low: 3.0 > high 2.0"
    assert error(build_dataclass, _Outer, raw, "top") == "top.inner[1].low: 3.0 > high 2.0"
    # a non-finite value in an optional float is a value error, not "expected float or null"
    assert (
        error(build_dataclass, _Outer, {"span": float("inf")})
        == "span: must be a finite number, got inf"
    )
    assert error(build_dataclass, _Outer, {"span": "x"}).startswith("span: expected float or null")
    with pytest.raises(ConfigError, match=r"^a\.b: bad$"), config_section("a"):
        raise ConfigError("b: bad")
