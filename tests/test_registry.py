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
