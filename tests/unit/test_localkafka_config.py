"""The local Kafka manager's pure logic: layouts, rendered files, ports, PIDs, the CLI.

No broker and no Java needed: processes here are short Python programs.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from hub.localkafka import LocalKafka, LocalKafkaError, ensure_kafka_jars, jvm, security
from hub.localkafka.commands import format_status, register
from hub.localkafka.config import (
    ClusterLayout,
    broker_settings,
    dedupe_buffer_bytes,
    default_heap_mb,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
)
from hub.localkafka.jars import MARKER, _last_error, logging_dependencies, render_pom
from hub.localkafka.paths import default_state_dir, kafka_state_dir
from hub.localkafka.ports import find_free_base_port, first_taken, port_is_free, require_free
from hub.localkafka.process import (
    command_line,
    is_node_process,
    read_pid,
    start_detached,
    stop_processes,
    tail,
    write_pid,
)
from hub.localkafka.state import ClusterRecord, load_record, save_record
from tests import kafka_fixtures


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listening socket that is not Kafka."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def held_pair() -> Iterator[int]:
    """An even port whose pair (broker and controller port of one node) is held, not by Kafka.

    Both ports are held so that no other program on the machine can make the first taken
    port of the pair differ from the one the test expects.
    """
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        base = port - port % 2
        sockets = [socket.socket(), socket.socket()]
        try:
            for offset, held in enumerate(sockets):
                held.bind(("127.0.0.1", base + offset))
                held.listen()
        except OSError:
            for held in sockets:
                held.close()
            continue
        try:
            yield base
        finally:
            for held in sockets:
                held.close()
        return
    raise RuntimeError("no free pair of ports on 127.0.0.1 in 100 tries")


# -- layout and rendered files --------------------------------------------------------


def test_single_node_ports_and_bootstrap() -> None:
    layout = ClusterLayout()
    assert layout.ports(0) == (9092, 9093)
    assert layout.bootstrap_servers == "127.0.0.1:9092"
    assert layout.quorum_voters == "0@127.0.0.1:9093"


def test_three_nodes_take_six_consecutive_ports() -> None:
    layout = ClusterLayout(nodes=3, base_port=9092)
    assert [layout.ports(i) for i in layout.node_ids] == [(9092, 9093), (9094, 9095), (9096, 9097)]
    assert layout.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert layout.quorum_voters == "0@127.0.0.1:9093,1@127.0.0.1:9095,2@127.0.0.1:9097"


@pytest.mark.parametrize(("nodes", "base_port"), [(2, 9092), (0, 9092), (1, 80), (3, 65534)])
def test_bad_layouts_are_refused(nodes: int, base_port: int) -> None:
    with pytest.raises(LocalKafkaError):
        ClusterLayout(nodes, base_port)


def test_single_node_settings_allow_transactions_and_compaction(tmp_path: Path) -> None:
    settings = broker_settings(ClusterLayout(), 0, tmp_path, 768)
    assert settings["process.roles"] == "broker,controller"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
        "min.insync.replicas",
    ):
        assert settings[key] == "1", key
    assert settings["group.initial.rebalance.delay.ms"] == "0"
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["log.cleaner.enable"] == "true"
    assert settings["log.dirs"] == str(tmp_path)


def test_three_node_settings_replicate() -> None:
    settings = broker_settings(ClusterLayout(nodes=3), 2, Path("/d"), 512)
    assert settings["node.id"] == "2"
    assert settings["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9096"
    assert settings["default.replication.factor"] == "3"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.replication.factor"] == "3"
    assert settings["min.insync.replicas"] == "2"
    assert settings["transaction.state.log.min.isr"] == "2"


def test_rendered_properties_round_trip_with_overrides(tmp_path: Path) -> None:
    text = render_server_properties(
        ClusterLayout(), 0, tmp_path, 768, {"num.partitions": "6", "x.y": "z"}
    )
    parsed = parse_properties(text)
    assert parsed["num.partitions"] == "6"
    assert parsed["x.y"] == "z"
    assert parsed["node.id"] == "0"
    assert text.startswith("# ")


def test_newlines_in_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError):
        render_server_properties(ClusterLayout(), 0, tmp_path, 768, {"a": "b\nc=d"})


def test_heap_and_cleaner_buffer() -> None:
    assert default_heap_mb(1) == 768
    assert default_heap_mb(3) == 512
    assert dedupe_buffer_bytes(768) == 96 * 1024 * 1024
    assert dedupe_buffer_bytes(256) == 32 * 1024 * 1024
    assert dedupe_buffer_bytes(4096) == 128 * 1024 * 1024


def test_cluster_id_is_kafka_uuid_text() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for text in ids:
        assert len(text) == 22
        assert not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


def test_log4j_config_writes_the_server_log(tmp_path: Path) -> None:
    text = render_log4j2(tmp_path / "server.log")
    assert f"appender.file.fileName = {tmp_path / 'server.log'}" in text
    assert "shutdownHook = disable" in text


def test_cluster_record_round_trip(tmp_path: Path) -> None:
    assert load_record(tmp_path) is None
    record = ClusterRecord("abc", 3, 19092, "4.3.1")
    save_record(tmp_path, record)
    assert load_record(tmp_path) == record
    (tmp_path / "cluster.json").write_text("{", encoding="utf-8")
    with pytest.raises(LocalKafkaError, match="unreadable"):
        load_record(tmp_path)


def test_state_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOVHUB_STATE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_state_dir() == tmp_path / ".govhub"
    assert kafka_state_dir() == tmp_path / ".govhub" / "kafka"
    monkeypatch.setenv("GOVHUB_STATE_DIR", "/srv/govhub")
    assert kafka_state_dir() == Path("/srv/govhub/kafka")


# -- jars and java --------------------------------------------------------------------


def _jars(libs: Path, *names: str) -> Path:
    libs.mkdir(parents=True, exist_ok=True)
    for name in names:
        (libs / name).write_bytes(b"")
    return libs


def test_binding_matches_slf4j_1_and_kafka_log4j(tmp_path: Path) -> None:
    libs = _jars(tmp_path, "slf4j-api-1.7.36.jar", "log4j-api-2.25.5.jar", "log4j-core-2.25.5.jar")
    assert logging_dependencies(libs) == [
        ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.5")
    ]


def test_binding_for_slf4j_2_without_log4j(tmp_path: Path) -> None:
    libs = _jars(tmp_path, "slf4j-api-2.0.16.jar", "kafka_2.13-4.9.0.jar")
    wanted = logging_dependencies(libs)
    assert [artifact for _, artifact, _ in wanted] == [
        "log4j-api",
        "log4j-core",
        "log4j-slf4j2-impl",
    ]
    assert len({version for _, _, version in wanted}) == 1


def test_pom_lists_dependencies() -> None:
    pom = render_pom([("org.apache.kafka", "kafka_2.13", "4.3.1")])
    assert "<artifactId>kafka_2.13</artifactId><version>4.3.1</version>" in pom
    assert "<packaging>pom</packaging>" in pom


def test_cached_jars_never_call_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "kafka" / "4.3.1"
    _jars(home / "libs", "kafka_2.13-4.3.1.jar")
    (home / MARKER).write_text("kafka_2.13-4.3.1.jar\n", encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ensure_kafka_jars("4.3.1", tmp_path) == home / "libs"


def test_half_finished_download_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _jars(tmp_path / "kafka" / "4.3.1" / "libs", "kafka_2.13-4.3.1.jar")  # no marker
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LocalKafkaError, match=r"^mvn not found: install Apache Maven"):
        ensure_kafka_jars("4.3.1", tmp_path)


def test_failed_download_names_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mvn"
    fake.write_text(
        "#!/bin/sh\n"
        "echo '[ERROR] Failed to execute goal on project kafka-jars: Could not find artifact "
        "org.apache.kafka:kafka_2.13:jar:9.9.9 in central -> [Help 1]'\n"
        "echo '[ERROR] '\n"
        "echo '[ERROR] To see the full stack trace of the errors, re-run Maven with -e.'\n"
        "exit 1\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(LocalKafkaError) as raised:
        ensure_kafka_jars("9.9.9", tmp_path / "cache")
    message = str(raised.value)
    assert "\n" not in message
    assert "Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9" in message
    assert str(tmp_path / "cache" / "kafka" / "9.9.9" / "mvn.log") in message
    assert not (tmp_path / "cache" / "kafka" / "9.9.9" / MARKER).exists()


def test_last_error_skips_maven_boilerplate(tmp_path: Path) -> None:
    log = tmp_path / "mvn.log"
    log.write_text("$ mvn ...\n[ERROR] boom -> [Help 1]\n[ERROR] \n[ERROR] Re-run Maven\n")
    assert _last_error(log) == "boom"


def test_bad_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="bad Kafka version"):
        ensure_kafka_jars("latest; rm -rf /", tmp_path)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("nonsense", None),
    ],
)
def test_java_version_parsing(output: str, major: int | None) -> None:
    assert jvm.java_major_version(output) == major


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    jvm.find_java.cache_clear()
    try:
        with pytest.raises(LocalKafkaError) as raised:
            jvm.find_java()
    finally:
        jvm.find_java.cache_clear()
    assert str(raised.value) == (
        "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"
    )


# -- ports ----------------------------------------------------------------------------


def test_port_checks(listening: int) -> None:
    assert not port_is_free(listening)
    assert first_taken([listening]) == listening
    base = find_free_base_port(3)
    assert base % 2 == 0
    assert first_taken(range(base, base + 6)) is None


def test_taken_port_error_names_port_and_option(held_pair: int) -> None:
    layout = ClusterLayout(1, held_pair)
    with pytest.raises(LocalKafkaError) as raised:
        require_free(layout, [0])
    assert f"port {held_pair} " in str(raised.value)
    assert "--base-port" in str(raised.value)


def test_up_refuses_a_port_held_by_another_program(tmp_path: Path, held_pair: int) -> None:
    kafka = LocalKafka(tmp_path / "kafka", base_port=held_pair)
    with pytest.raises(LocalKafkaError, match=f"port {held_pair} "):
        kafka.up(timeout=5)
    assert load_record(tmp_path / "kafka") is None


# -- PID files and processes ----------------------------------------------------------


def fake_broker(properties: Path, ignore_term: bool = False) -> list[str]:
    """A Python process whose command line looks like our broker's."""
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    return [sys.executable, "-c", code, "kafka.Kafka", str(properties)]


def wait_for_line(path: Path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.02)


def test_pid_files(tmp_path: Path) -> None:
    pid_file = tmp_path / "kafka.pid"
    assert read_pid(pid_file) is None
    write_pid(pid_file, 4242)
    assert read_pid(pid_file) == 4242
    pid_file.write_text("garbage")
    assert read_pid(pid_file) is None


def test_other_processes_are_not_our_broker(tmp_path: Path) -> None:
    assert command_line(os.getpid()) is not None
    assert not is_node_process(os.getpid(), tmp_path / "server.properties")
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert command_line(gone.pid) is None


def test_zombies_count_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while command_line(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # exited but not reaped yet: a zombie
    assert command_line(child.pid) is None
    child.wait()


def test_detached_start_and_stop(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    log = tmp_path / "kafka.log"
    pid = start_detached(fake_broker(props), log, tmp_path)
    wait_for_line(log, "ready")
    assert is_node_process(pid, props)
    assert os.getsid(pid) != os.getsid(0)
    assert stop_processes({pid: props}, timeout=10) == []
    assert not is_node_process(pid, props)
    assert tail(log) == ["ready"]


def test_stubborn_process_gets_sigkill(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    log = tmp_path / "kafka.log"
    pid = start_detached(fake_broker(props, ignore_term=True), log, tmp_path)
    wait_for_line(log, "ready")
    assert stop_processes({pid: props}, timeout=0.5) == [pid]
    assert not is_node_process(pid, props)


def test_stop_never_signals_a_stranger(tmp_path: Path) -> None:
    assert stop_processes({os.getpid(): tmp_path / "server.properties"}, timeout=0.1) == []


def _recorded_cluster(state_dir: Path, pid: int) -> LocalKafka:
    save_record(state_dir, ClusterRecord("abc", 1, 19092, "4.3.1"))
    (state_dir / "node-0").mkdir(parents=True)
    write_pid(state_dir / "node-0" / "kafka.pid", pid)
    return LocalKafka(state_dir)


def test_stale_pid_of_a_stranger(tmp_path: Path) -> None:
    kafka = _recorded_cluster(tmp_path, os.getpid())
    status = kafka.status()
    assert kafka.bootstrap_servers == "127.0.0.1:19092"  # the recorded layout, not 9092
    assert not status.healthy
    assert status.nodes[0].pid == os.getpid()
    assert not status.nodes[0].alive
    assert "stale pid" in format_status(status)
    kafka.down()  # must not signal this test process
    assert not (tmp_path / "node-0" / "kafka.pid").exists()


def test_lost_pid_file_is_found_again(tmp_path: Path) -> None:
    kafka = _recorded_cluster(tmp_path, 999_999_999)
    props = tmp_path / "node-0" / "server.properties"
    props.write_text("node.id=0\n")
    log = tmp_path / "node-0" / "kafka.log"
    pid = start_detached(fake_broker(props), log, tmp_path)
    try:
        wait_for_line(log, "ready")
        assert kafka.running_pid(0) == pid
        assert read_pid(tmp_path / "node-0" / "kafka.pid") == pid
        kafka.down(timeout=10)
        assert not is_node_process(pid, props)
    finally:
        stop_processes({pid: props}, timeout=1)


def test_down_and_status_without_a_cluster(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "nothing")
    kafka.down()
    status = kafka.status()
    assert not status.healthy
    assert "no cluster" in status.detail


def test_node_count_cannot_change_under_formatted_storage(tmp_path: Path) -> None:
    save_record(tmp_path, ClusterRecord("abc", 1, 19092, "4.3.1"))
    with pytest.raises(LocalKafkaError, match="holds a 1-node cluster: use --nodes 1"):
        LocalKafka(tmp_path, nodes=3, base_port=19092).up()


# -- the CLI --------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="govhub")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_cli_status_without_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("kafka", "status", "--state-dir", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "node  pid  state" in out
    assert "healthy: no" in out


def test_cli_errors_are_one_line(
    tmp_path: Path, held_pair: int, capsys: pytest.CaptureFixture[str]
) -> None:
    base = held_pair
    assert run_cli("kafka", "up", "--state-dir", str(tmp_path), "--base-port", str(base)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"govhub: error: port {held_pair} ")
    assert err.count("\n") == 1


def test_cli_down_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("kafka", "down", "--state-dir", str(tmp_path)) == 0
    assert run_cli("kafka", "down", "--state-dir", str(tmp_path)) == 0


def test_cli_needs_an_action() -> None:
    with pytest.raises(SystemExit):
        run_cli("kafka")


# -- broker selection of the test fixtures ----------------------------------------------


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setattr(kafka_fixtures, "docker_engine_answers", pytest.fail)
    with ExitStack() as stack:
        source = kafka_fixtures.open_kafka(stack)
    assert (source.kind, source.bootstrap_servers) == ("env", "broker:9092")


def test_no_docker_engine_means_no(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    started = time.monotonic()
    assert kafka_fixtures.docker_engine_answers(timeout=1.0) is False
    assert time.monotonic() - started < 5


def test_failing_container_falls_back_to_local_jars(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(stack: ExitStack) -> kafka_fixtures.KafkaSource:
        raise RuntimeError("image pull refused")

    def local(stack: ExitStack) -> kafka_fixtures.KafkaSource:
        return kafka_fixtures.KafkaSource("local", "127.0.0.1:1", "fake")

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(kafka_fixtures, "docker_engine_answers", lambda: True)
    monkeypatch.setattr(kafka_fixtures, "start_testcontainers_kafka", broken)
    monkeypatch.setattr(kafka_fixtures, "start_local_kafka", local)
    with ExitStack() as stack:
        assert kafka_fixtures.open_kafka(stack).kind == "local"


def test_leftovers_of_dead_sessions_are_reaped(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / str(dead.pid)).mkdir()
    (tmp_path / str(os.getpid())).mkdir()
    kafka_fixtures.reap_leftovers(tmp_path)
    assert not (tmp_path / str(dead.pid)).exists()
    assert (tmp_path / str(os.getpid())).exists()


# -- secure mode ----------------------------------------------------------------------------


def _creds(tls: bool = False) -> security.BrokerCredentials:
    return security.BrokerCredentials("admin-secret", "controller-secret", tls)


def test_secure_settings_authenticate_every_listener_and_authorize(tmp_path: Path) -> None:
    layout = ClusterLayout(3, 19092)
    paths = security.security_paths(tmp_path)
    text = render_server_properties(
        layout, 1, tmp_path, 512, security.secure_settings(layout, 1, _creds(), paths)
    )
    props = parse_properties(text)
    assert props["listeners"] == "CLIENT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:19094"
    # no listener is left without authentication, the controller one included
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["inter.broker.listener.name"] == "CLIENT"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:govhub-admin;User:govhub-controller"
    scram = props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert scram.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required")
    assert 'username="govhub-admin" password="admin-secret";' in scram
    plain = props["listener.name.controller.plain.sasl.jaas.config"]
    assert 'user_govhub-controller="controller-secret"' in plain
    # the quorum voters and replication of a 3-node cluster are unchanged
    assert props["controller.quorum.voters"] == layout.quorum_voters
    assert props["min.insync.replicas"] == "2"
    assert not any(key.startswith("listener.name.client.ssl") for key in props)


def test_tls_settings_use_the_generated_pem_files(tmp_path: Path) -> None:
    layout = ClusterLayout(1, 19092)
    paths = security.security_paths(tmp_path)
    props = security.secure_settings(layout, 0, _creds(tls=True), paths)
    assert props["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
    assert props["listener.name.client.ssl.keystore.type"] == "PEM"
    assert props["listener.name.client.ssl.keystore.location"] == str(paths.broker_keystore)
    assert props["listener.name.client.ssl.truststore.location"] == str(paths.ca_cert)
    client = security.client_settings(_creds(tls=True), paths.ca_cert)
    assert client == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "govhub-admin",
        "sasl.password": "admin-secret",
        "ssl.ca.location": str(paths.ca_cert),
    }


def test_scram_user_is_added_at_format_time() -> None:
    assert security.scram_format_arguments(_creds()) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=govhub-admin,password=admin-secret]",
    ]


def test_credentials_are_kept_owner_only(tmp_path: Path) -> None:
    creds = security.BrokerCredentials.generate(tls=False)
    assert len(creds.admin_password) >= 32 and creds.admin_password != creds.controller_password
    security.save_credentials(tmp_path, creds)
    paths = security.security_paths(tmp_path)
    assert security.load_credentials(tmp_path) == creds
    assert paths.root.stat().st_mode & 0o777 == 0o700
    for path in (paths.credentials, paths.client_properties):
        assert path.stat().st_mode & 0o777 == 0o600
    client = parse_properties(paths.client_properties.read_text())
    assert client["sasl.password"] == creds.admin_password
    assert client["security.protocol"] == "SASL_PLAINTEXT"
    assert security.load_credentials(tmp_path / "elsewhere") is None
    paths.credentials.write_text("{not json")
    with pytest.raises(LocalKafkaError, match="unreadable"):
        security.load_credentials(tmp_path)


def test_tls_material_is_a_ca_and_a_broker_certificate_for_loopback(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    paths = security.security_paths(tmp_path)
    security.ensure_tls_material(paths)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    chain = x509.load_pem_x509_certificates(paths.broker_keystore.read_bytes())
    broker = chain[0]
    assert broker.issuer == ca.subject
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert b"PRIVATE KEY" in paths.broker_keystore.read_bytes()
    for secret in (paths.ca_key, paths.broker_keystore):
        assert secret.stat().st_mode & 0o777 == 0o600
    before = paths.ca_cert.read_bytes()
    security.ensure_tls_material(paths)  # made once: clients keep trusting the same CA
    assert paths.ca_cert.read_bytes() == before


def test_security_mode_cannot_change_under_formatted_storage(tmp_path: Path) -> None:
    save_record(tmp_path, ClusterRecord("abc", 1, 19092, "4.3.1", None, "sasl"))
    assert load_record(tmp_path) == ClusterRecord("abc", 1, 19092, "4.3.1", None, "sasl")
    with pytest.raises(LocalKafkaError, match="holds a sasl cluster: start it with --secure"):
        LocalKafka(tmp_path, base_port=19092).up()
    with pytest.raises(LocalKafkaError, match="--secure --tls"):
        save_record(tmp_path, ClusterRecord("abc", 1, 19092, "4.3.1", None, "sasl_ssl"))
        LocalKafka(tmp_path, base_port=19092, secure=True).up()
    # a secure record without its credentials cannot be reached: say so
    save_record(tmp_path, ClusterRecord("abc", 1, 19092, "4.3.1", None, "sasl"))
    with pytest.raises(LocalKafkaError, match=r"credentials\.json is missing"):
        LocalKafka(tmp_path, base_port=19092, secure=True).up()


def test_cli_secure_options_and_printed_client_settings(tmp_path: Path) -> None:
    from hub.localkafka.commands import _cluster, format_client_settings

    parser = argparse.ArgumentParser(prog="govhub")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kafka", "up", "--secure", "--tls", "--state-dir", str(tmp_path)])
    assert _cluster(args).security == "sasl_ssl"
    # later commands follow the recorded mode without the flags
    (tmp_path / "kafka").mkdir()
    save_record(tmp_path / "kafka", ClusterRecord("abc", 1, 19092, "4.3.1", None, "sasl"))
    args = parser.parse_args(["kafka", "status", "--state-dir", str(tmp_path)])
    assert _cluster(args).security == "sasl"
    paths = security.security_paths(tmp_path)
    text = format_client_settings(security.client_settings(_creds(True), paths.ca_cert), paths)
    assert '"security.protocol" = "SASL_SSL"' in text
    assert '"sasl.password" = "admin-secret"' in text
    assert f"CA certificate for clients: {paths.ca_cert}" in text
    assert "govhub kafka acls --apply" in text
    acls = parser.parse_args(["kafka", "acls", "--apply", "--json"])
    assert acls.apply and acls.json
