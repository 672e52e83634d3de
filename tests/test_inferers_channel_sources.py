"""ChannelSourcesInferer: each channel from the first available network of its list, each with its own inferer."""

import logging

import pytest
import torch

from common.inferers import ChannelSourcesInferer, DihedralTTAInferer


class Marked(torch.nn.Module):
    """(B, 1, H, W) -> (B, 3, H, W): channel c is ``mark + c`` times the input, with a mark per network."""

    def __init__(self, mark: float):
        super().__init__()
        self.mark = mark
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.cat([(self.mark + c) * x for c in range(3)], dim=1)


def sources(**marks):
    return {name: {"network": Marked(mark)} for name, mark in marks.items()}


PREFERENCES = [["base", "a", "b"], ["a", "base"], ["b", "base"]]


def test_each_channel_comes_from_its_first_available_network_run_once(caplog):
    given = sources(base=0.0, a=10.0, b=20.0)
    x = torch.rand(2, 1, 4, 5)
    with caplog.at_level(logging.INFO):
        out = ChannelSourcesInferer(given, PREFERENCES, channel_names=["N", "M", "T"])(x)
    torch.testing.assert_close(out, torch.cat([0.0 * x, 11.0 * x, 22.0 * x], dim=1))
    assert [given[name]["network"].calls for name in ("base", "a", "b")] == [1, 1, 1]
    assert "M: predicted by 'a'" in caplog.text


def test_unavailable_networks_are_replaced_and_never_run(caplog):
    given = sources(base=0.0, a=10.0, b=20.0)
    x = torch.rand(1, 1, 3, 3)
    with caplog.at_level(logging.INFO):
        inferer = ChannelSourcesInferer(given, PREFERENCES, available=["base", "b"], channel_names=["N", "M", "T"])
    torch.testing.assert_close(inferer(x), torch.cat([0.0 * x, 1.0 * x, 22.0 * x], dim=1))
    assert given["a"]["network"].calls == 0
    assert "M: predicted by 'base' ('a' not available)" in caplog.text
    only_base = ChannelSourcesInferer(given, PREFERENCES, available=["base"])
    torch.testing.assert_close(only_base(x), torch.cat([0.0 * x, 1.0 * x, 2.0 * x], dim=1))


def test_each_network_runs_under_its_own_inferer_in_eval_mode():
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3)).train()
    plain = Marked(5.0)
    given = {"base": {"network": conv, "inferer": DihedralTTAInferer(group="d4")}, "a": {"network": plain}}
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        out = ChannelSourcesInferer(given, [["base"], ["a"], ["base"]])(x)
        expected = DihedralTTAInferer(group="d4")(x, conv.eval())
    assert not conv.training
    torch.testing.assert_close(out[:, [0, 2]], expected[:, [0, 2]])
    torch.testing.assert_close(out[:, 1:2], 6.0 * x)


def test_configuration_errors():
    with pytest.raises(ValueError, match=r"not defined: \['c'\]"):
        ChannelSourcesInferer(sources(base=0.0), [["base", "c"]])
    with pytest.raises(ValueError, match=r"Actin: none of its networks \['a'\] is available"):
        ChannelSourcesInferer(sources(base=0.0, a=1.0), [["base"], ["a"]], ["base"], channel_names=["N", "Actin"])
