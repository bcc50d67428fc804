import pytest

from avagent.actions import ACTIONS, get_action, plan_json_schema
from avagent.actions.base import ActionParams, parse_params
from avagent.errors import ParameterError


class _Gain(ActionParams):
    gain_db: float = 0.0


def test_unknown_action_lists_valid_names():
    with pytest.raises(ParameterError, match="valid actions: spectral_subtraction"):
        get_action("reverb")


def test_parse_params_quotes_bad_value():
    with pytest.raises(ParameterError, match=r"gain_db='loud'"):
        parse_params(_Gain, "volume", {"gain_db": "loud"})
    with pytest.raises(ParameterError, match=r"unknown parameter offset=3 \(valid: gain_db\)"):
        parse_params(_Gain, "volume", {"offset": 3})


def test_table_has_the_eight_actions_and_hum():
    assert set(ACTIONS) == {
        "spectral_subtraction", "wiener", "wavelet_denoise", "spectral_gating",
        "remove_hum", "speed", "pitch", "volume", "fill_blanks",
    }
    assert {s.family for s in ACTIONS.values()} == {"noise", "tonal", "level", "timing", "repair"}


def test_plan_schema_names_every_action():
    schema = plan_json_schema()
    names = [v["properties"]["action"]["const"] for v in schema["properties"]["steps"]["items"]["anyOf"]]
    assert names == list(ACTIONS)


def test_action_names_derive_from_the_table():
    from avagent.actions import action_names

    assert action_names("noise") == ("spectral_subtraction", "wiener", "wavelet_denoise",
                                     "spectral_gating")
    assert action_names(changes_timing=True) == ("speed", "pitch")
    assert set(action_names()) == set(ACTIONS)
    assert "speed" not in action_names(changes_timing=False)
    with pytest.raises(ParameterError, match="family='coordination'"):
        action_names("coordination")  # type: ignore[arg-type]


CALL_ONLY = {"spectral_subtraction": {"noise"}}  # a noise-only clip (documented in its model)


@pytest.mark.parametrize("name", list(ACTIONS))
def test_function_defaults_equal_the_params_model(name):
    """Each action writes its defaults twice (keyword signature, params model): they must agree,
    name for name and value for value, or a plan's defaults would differ from a direct call."""
    import inspect

    spec = ACTIONS[name]
    sig = inspect.signature(spec.func)
    keywords = {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "sr"
    }
    fields = spec.params.model_fields
    call_only = set(keywords) - set(fields)  # arrays a caller may pass, never a plan
    assert call_only <= CALL_ONLY.get(name, set()), f"{name}: {call_only} not in its params model"
    assert all(keywords.pop(k) is None for k in call_only)
    assert set(keywords) == set(fields), name
    for key, default in keywords.items():
        assert default is not inspect.Parameter.empty, f"{name}.{key} has no default"
        assert fields[key].get_default(call_default_factory=True) == default, f"{name}.{key}"
