"""The gateway's typed config: defaults, environment, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, isolated_config, load_config
from hub.gateway.access import TIER_NAMES


def test_defaults_and_environment() -> None:
    cfg = load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "h:1", "GOVHUB_TOPIC_PREFIX": "p."})
    assert cfg.gateway.port == 8490 and cfg.gateway.redirect
    assert cfg.gateway.group_id == "p.govhub-gateway"  # hubs sharing a cluster do not mix
    cfg = load_config(
        env={
            "KAFKA_BOOTSTRAP_SERVERS": "h:1",
            "GOVHUB_GATEWAY_PORT": "9000",
            "GOVHUB_GATEWAY_ADVERTISED_URL": "https://gw1.example:9000",
        }
    )
    assert cfg.gateway.port == 9000
    assert cfg.gateway.advertised_url == "https://gw1.example:9000"
    iso = isolated_config("h:1", "it1.", Path("/tmp/x"))
    assert iso.gateway.port == 0 and iso.gateway.group_id == "it1.gateway"


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[gateway]\nport = 70000\n", r"gateway\.port"),
        ("[gateway]\nclient_buffer_bytes = 10\n", r"gateway\.client_buffer_bytes"),
        ("[gateway]\nupper_tier_buffer_bytes = 10\n", r"gateway\.upper_tier_buffer_bytes"),
        ('[gateway]\nadvertised_url = "gw1:8490"\n', r"gateway\.advertised_url"),
        ("[gateway]\nbuffer = 1\n", r"gateway\.buffer: Extra inputs"),
        ('[gateway]\ntls_cert_file = "c.pem"\n', "tls_cert_file and tls_key_file"),
        ('[gateway]\ntls_client_ca_file = "ca.pem"\n', "needs tls_cert_file"),
        ("[gateway]\nsession_timeout_ms = 100\n", r"gateway\.session_timeout_ms"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[kafka]\nbootstrap_servers = "h:1"\n' + toml)
    with pytest.raises(ConfigError, match=field):
        load_config(path, env={})


def test_upper_tier_streams_have_a_buffer_bound_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[kafka]\nbootstrap_servers = "h:1"\n')
    gw = load_config(path, env={}).gateway
    assert {tier: gw.buffer_bytes(tier) for tier in (*TIER_NAMES.values(), "department")} == {
        "department": 16 << 20,
        "province": 16 << 20,
        "city": 16 << 20,
        "county": 16 << 20,
        "township": 1 << 20,
        "village": 1 << 20,
    }
    path.write_text(
        '[kafka]\nbootstrap_servers = "h:1"\n'
        "[gateway]\nclient_buffer_bytes = 100000\nupper_tier_buffer_bytes = 200000\n"
    )
    gw = load_config(path, env={}).gateway
    assert (gw.buffer_bytes("village"), gw.buffer_bytes("department")) == (100_000, 200_000)
