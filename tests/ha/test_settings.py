"""Partitioned-mode settings from the environment (router/ha/settings.py): the advertised
address other routers forward to."""

from __future__ import annotations

import socket

import pytest

from router.ha.settings import default_advertise_url, ha_settings_from_env


def test_no_instance_is_the_single_router_default():
    assert ha_settings_from_env({"BATON_HA_ADVERTISE_URL": "http://r1:8080"}) is None


def test_the_advertised_url_and_the_forward_timeout_come_from_the_environment():
    s = ha_settings_from_env({"BATON_HA_INSTANCE": "r1",
                              "BATON_HA_ADVERTISE_URL": "http://router-1:8080/",
                              "BATON_HA_FORWARD_TIMEOUT_S": "2.5"})
    assert (s.advertise_url, s.forward_timeout_s) == ("http://router-1:8080", 2.5)
    assert ha_settings_from_env({"BATON_HA_INSTANCE": "r1"}).advertise_url is None


def test_an_advertised_address_that_is_not_a_url_is_refused():
    with pytest.raises(ValueError, match="BATON_HA_ADVERTISE_URL"):
        ha_settings_from_env({"BATON_HA_INSTANCE": "r1", "BATON_HA_ADVERTISE_URL": "r1:8080"})


def test_the_default_address_is_where_the_router_listens():
    assert default_advertise_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert default_advertise_url("::1", 8443, tls=True) == "https://[::1]:8443"
    assert default_advertise_url("0.0.0.0", 8080) == f"http://{socket.gethostname()}:8080"
