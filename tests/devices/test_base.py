"""DEST as users write it, and the device options refused before anything connects."""

import pytest

from uninext_deploy import api
from uninext_deploy.devices.base import Destination, parse_destination


def test_destinations_as_ssh_takes_them():
    assert parse_destination("pi@192.168.1.20") == Destination("pi@192.168.1.20", "192.168.1.20", "pi", None)
    assert parse_destination("pi@board:2222") == Destination("pi@board:2222", "board", "pi", 2222)
    assert parse_destination("board") == Destination("board", "board")  # a Host alias: user, port from the config
    assert parse_destination("[fe80::1]:22") == Destination("[fe80::1]:22", "fe80::1", None, 22)


@pytest.mark.parametrize("text", ["pi@board:70000", "pi@", "two words", "a@b@c", "board:"])
def test_a_malformed_destination_is_one_line_naming_the_form(text):
    with pytest.raises(api.UserError, match=r"is not user@host\[:port\] \(or a Host alias of ~/.ssh/config\)"):
        api.DeviceOptions(text)


def test_device_options_refused_before_connecting():
    with pytest.raises(api.UserError, match="--accept-new-host-key is for a device reached over SSH; add --device"):
        api.DeviceOptions(accept_new_host_key=True)
    with pytest.raises(api.UserError, match="--device-timeout must be above 0"):
        api.DeviceOptions("board", timeout=0)
    with pytest.raises(api.UserError, match="--device runs the bundle on board itself; drop --platform"):
        api.verify("nowhere.tar.gz", device="board", platform=api.PlatformOptions("linux/arm64"))
