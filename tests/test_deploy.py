"""deploy/: install.sh (dry run and staged installs), the example config, the systemd unit, the udev
rules, and the mosquitto ACL against a real broker with the users install.sh creates."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.center.passwords import hash_password
from gateway.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
INSTALL = DEPLOY / "install.sh"
WAIT = 5.0              # seconds for any broker round trip or process start


def stage(prefix: Path, *extra: str) -> subprocess.CompletedProcess:
    """A staged install under prefix: files only, no venv, no root actions."""
    proc = subprocess.run(["bash", str(INSTALL), "--prefix", str(prefix), "--no-venv", *extra],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def fill_placeholders(text: str, password: str = "agent-secret") -> str:
    """What the example config's comments tell the technician to do."""
    hashed = hash_password(password, iterations=1000)
    out, n = re.subn(r'^password_hash = ".*"$', f'password_hash = "{hashed}"', text, flags=re.M)
    assert n == 1
    return out


# --- install.sh -----------------------------------------------------------------------------------

def test_dry_run_lists_every_step_and_changes_nothing(tmp_path):
    watched = [Path(p) for p in ("/opt/callgate", "/etc/callgate", "/var/lib/callgate",
                                 "/etc/systemd/system/callgate.service", "/usr/local/bin/callgate",
                                 "/etc/udev/rules.d/99-callgate-modems.rules")]
    before = {p: p.exists() for p in watched}
    proc = subprocess.run(["bash", str(INSTALL), "--dry-run", "--with-mosquitto", "--start"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "DRY RUN" in out
    for expected in ("useradd --system", "usermod --append --groups dialout,audio callgate",
                     "deploy/web-vendor.sh", "python3 -m venv /opt/callgate/venv", "/opt/callgate/venv/bin/pip install",
                     "cp -R " + str(REPO / "firmware_config") + " /opt/callgate/firmware_config.new",
                     "-> /etc/callgate/callgate.toml", "-> /etc/callgate/flows/main.json",
                     "-> /etc/mosquitto/conf.d/callgate.conf", "-> /etc/mosquitto/callgate.acl",
                     "mosquitto_passwd", "-> /etc/systemd/system/callgate.service",
                     "-> /etc/udev/rules.d/99-callgate-modems.rules", "udevadm control --reload-rules",
                     "systemctl daemon-reload", "systemctl enable callgate.service",
                     "callgate config check -c /etc/callgate/callgate.toml", "Next steps:"):
        assert expected in out, f"dry run does not mention {expected!r}:\n{out}"
    # steps in a sensible order: mqtt.js before pip copies the package, unit before enable
    assert out.index("web-vendor.sh") < out.index("pip install") < out.index("systemctl enable callgate")
    assert {p: p.exists() for p in watched} == before

    staged = subprocess.run(["bash", str(INSTALL), "--dry-run", "--prefix", str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=60)
    assert staged.returncode == 0, staged.stderr
    assert "skipped: useradd" in staged.stdout and "skipped: udevadm" in staged.stdout
    assert not (tmp_path / "p").exists()


def test_staged_install_layout(tmp_path):
    p = tmp_path / "p"
    out = stage(p, "--with-mosquitto").stdout
    for skipped in ("apt-get install", "useradd/usermod callgate", "systemctl enable/restart mosquitto",
                    "udevadm reload/trigger, systemctl daemon-reload/enable", "mqtt.js download, venv and pip install"):
        assert f"skipped: {skipped}" in out, skipped
    for rel in ("etc/callgate.toml", "etc/flows/main.json", "firmware_config/simcom_sim7600.toml",
                "share/callgate.example.toml", "share/README.md", "share/systemd/callgate.service",
                "share/udev/99-callgate-modems.rules", "bin/callgate",
                "etc/mosquitto/conf.d/callgate.conf", "etc/mosquitto/callgate.acl", "etc/mosquitto/callgate.passwd"):
        assert (p / rel).is_file(), rel
    assert (p / "var/lib/callgate").is_dir()
    assert not (p / "venv").exists()
    assert (p / "etc/callgate.toml").stat().st_mode & 0o777 == 0o640      # it holds the broker password

    unit = (p / "share/systemd/callgate.service").read_text()
    assert f"ExecStart={p}/venv/bin/callgate run -c {p}/etc/callgate.toml" in unit
    assert f"Environment=CALLGATE_FIRMWARE_CONFIG={p}/firmware_config" in unit
    assert f"ReadWritePaths={p}/var/lib/callgate" in unit
    rest = unit.replace(f"{p}/var/lib/callgate", "<state>").replace(f"{p}/etc", "<etc>").replace(str(p), "<p>")
    assert not re.search(r"/opt/callgate|/etc/callgate|/var/lib/callgate", rest)

    cfg = load_config_filled(p / "etc/callgate.toml")
    assert cfg.data_dir == p / "var/lib/callgate"
    assert cfg.lines[0].flow == p / "etc/flows/main.json"
    # the generated broker password is in the config and in mosquitto's password file
    assert cfg.mqtt.username == "callgate" and cfg.mqtt.password not in ("", "CHANGE-ME")
    assert (p / "etc/mosquitto/callgate.passwd").read_text().startswith("callgate:")
    conf = (p / "etc/mosquitto/conf.d/callgate.conf").read_text()
    assert f"password_file {p}/etc/mosquitto/callgate.passwd" in conf


def load_config_filled(path: Path):
    filled = path.with_name("filled.toml")
    filled.write_text(fill_placeholders(path.read_text()))
    return load_config(filled)


def test_rerun_keeps_edited_config_and_refreshes_profiles(tmp_path):
    p = tmp_path / "p"
    stage(p, "--with-mosquitto")
    config = p / "etc/callgate.toml"
    edited = config.read_text().replace('id = "callgate"', 'id = "shop-7"') + "\n# technician was here\n"
    config.write_text(edited)
    flow = p / "etc/flows/main.json"
    flow.write_text('{"edited": true}')
    passwd_before = (p / "etc/mosquitto/callgate.passwd").read_text()
    (p / "firmware_config/simcom_sim7600.toml").unlink()
    (p / "firmware_config/stale.toml").write_text("# from an older release\n")

    out = stage(p, "--with-mosquitto").stdout
    assert config.read_text() == edited
    assert flow.read_text() == '{"edited": true}'
    assert f"kept {config} (differs from the shipped" in out
    assert (p / "etc/mosquitto/callgate.passwd").read_text() == passwd_before
    assert "broker user callgate exists" in out
    # profiles belong to the release: replaced as a whole
    assert (p / "firmware_config/simcom_sim7600.toml").read_bytes() == \
        (REPO / "firmware_config/simcom_sim7600.toml").read_bytes()
    assert not (p / "firmware_config/stale.toml").exists()


def test_installed_command_finds_the_installed_profiles(tmp_path):
    """A non-editable install has no firmware_config beside the package: the wrapper and the unit
    point CALLGATE_FIRMWARE_CONFIG at the copy install.sh made."""
    p = tmp_path / "p"
    stage(p)
    (p / "venv/bin").mkdir(parents=True)
    (p / "venv/bin/callgate").symlink_to(Path(sys.executable).parent / "callgate")   # stands in for the venv
    config = p / "etc/callgate.toml"

    shipped = subprocess.run([str(p / "bin/callgate"), "config", "check", "-c", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert shipped.returncode == 1
    assert "agents[0].password_hash" in shipped.stdout and "callgate hash-password" in shipped.stdout

    config.write_text(fill_placeholders(config.read_text()))
    ok = subprocess.run([str(p / "bin/callgate"), "config", "check", "-c", str(config)],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid (1 line(s), 1 queue(s), 1 agent(s))" in ok.stdout

    config.write_text(config.read_text().replace('profile = "simcom_sim7600"', 'profile = "acme_x1"'))
    missing = subprocess.run([str(p / "bin/callgate"), "config", "check", "-c", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert (f"{p}/firmware_config/acme_x1.toml: no such modem profile (known: huawei_e17x, quectel_ec25, "
            f"quectel_ec25_uac, simcom_sim7600, simcom_sim800, v253_conexant, v253_usr5637)") in missing.stdout

    verify = subprocess.run(["systemd-analyze", "verify", str(p / "share/systemd/callgate.service")],
                            capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0 and "callgate.service" not in verify.stderr, verify.stderr


# --- the example config ---------------------------------------------------------------------------

def test_example_config_refuses_to_validate_until_an_agent_is_set(tmp_path):
    example = DEPLOY / "callgate.example.toml"
    with pytest.raises(ConfigError, match=r"agents\[0\]\.password_hash: must be a salted hash made by `callgate hash-password`"):
        load_config(example)
    filled = tmp_path / "callgate.toml"
    filled.write_text(fill_placeholders(example.read_text()))
    cfg = load_config(filled)
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883 and cfg.mqtt.username == "callgate"
    assert cfg.mqtt.ws_url == "ws://0.0.0.0:9001"
    assert cfg.web.host == "0.0.0.0"
    assert cfg.data_dir == Path("/var/lib/callgate")
    assert [q.id for q in cfg.queues] == ["support"]
    assert '"QueueId": "support"' in (DEPLOY / "demo/flow-main.json").read_text()
    line = cfg.lines[0]
    assert line.profile == "simcom_sim7600"
    assert re.fullmatch(r"/dev/callgate/simcom_sim7600-SERIAL-at", line.at_port)
    assert re.fullmatch(r"/dev/callgate/simcom_sim7600-SERIAL-audio", line.audio_port)
    # the unit writes where the config keeps its data
    assert f"ReadWritePaths={cfg.data_dir}" in (DEPLOY / "callgate.service").read_text()


# --- udev -----------------------------------------------------------------------------------------

def test_udev_rules_match_every_profile_usb_entry():
    rules = (DEPLOY / "99-callgate-modems.rules").read_text()
    links = {}
    for line in rules.splitlines():
        m = re.search(r'ATTRS\{idVendor\}=="(\w+)", ATTRS\{idProduct\}=="(\w+)", ENV\{ID_USB_INTERFACE_NUM\}=="(\d\d)", '
                      r'SYMLINK\+="callgate/(\w+)-\$attr\{serial\}-(at|audio)", GROUP="dialout", MODE="0660"', line)
        if m:
            links[(m[1], m[2], m[5])] = int(m[3])
    expected = {}
    for path in sorted((REPO / "firmware_config").glob("*.toml")):
        profile = tomllib.loads(path.read_text())
        for usb in profile.get("identify", {}).get("usb", []):
            expected.setdefault((usb["vid"], usb["pid"], "at"), usb["at_interface"])
            if "audio_interface" in usb:
                expected.setdefault((usb["vid"], usb["pid"], "audio"), usb["audio_interface"])
            assert re.search(rf'ATTR\{{idVendor\}}=="{usb["vid"]}", ATTR\{{idProduct\}}=="{usb["pid"]}", '
                             r'ENV\{ID_MM_DEVICE_IGNORE\}="1"', rules), path.stem
    assert links == expected
    assert links[("1e0e", "9001", "audio")] == 4 and links[("2c7c", "0125", "audio")] == 1


def test_udev_parses_the_rules_without_complaint(tmp_path):
    """udevadm reads every rules file while testing a device; a private mount namespace shows it ours."""
    rules_dir = tmp_path / "rules.d"
    rules_dir.mkdir()
    shutil.copy(DEPLOY / "99-callgate-modems.rules", rules_dir)
    script = f"mount --bind {rules_dir} /etc/udev/rules.d && udevadm test /sys/class/tty/tty0"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    log = proc.stdout + proc.stderr
    assert "Reading rules file: /etc/udev/rules.d/99-callgate-modems.rules" in log, log[-2000:]
    complaints = [ln for ln in log.splitlines() if "99-callgate-modems.rules:" in ln]
    assert complaints == []


# --- mosquitto + ACL ------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A paho client (MQTT 3.1.1, like the gateway and the dashboard) that records what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None, transport: str = "tcp"):
        self.received: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._acks: dict[int, threading.Event] = {}
        self._connected = threading.Event()
        self.reason = None
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{transport}-{port}",
                             protocol=mqtt.MQTTv311, transport=transport)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self._acks.setdefault(mid, threading.Event()).set()
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        assert self._connected.wait(WAIT), "no CONNACK"

    def _on_connect(self, c, u, flags, reason, props):
        self.reason = reason
        self._connected.set()

    def _on_message(self, c, u, msg):
        with self._cond:
            self.received.append((msg.topic, msg.payload))
            self._cond.notify_all()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, topic: str) -> None:
        _, mid = self.c.subscribe(topic, qos=1)
        assert self._acks.setdefault(mid, threading.Event()).wait(WAIT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def wait_for(self, topic: str) -> list[str]:
        """Block until a message on topic arrives; return every topic received so far."""
        with self._cond:
            assert self._cond.wait_for(lambda: any(t == topic for t, _ in self.received), WAIT), \
                f"{topic} never arrived; got {self.received}"
            return [t for t, _ in self.received]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def broker(tmp_path):
    """mosquitto with the staged deploy/mosquitto files: users callgate (from install.sh), alice, bob."""
    p = tmp_path / "p"
    stage(p, "--with-mosquitto")
    mq = p / "etc/mosquitto"
    for user in ("alice", "bob"):
        subprocess.run(["mosquitto_passwd", "-b", str(mq / "callgate.passwd"), user, f"{user}-pw"], check=True)
    tcp, ws = free_port(), free_port()
    conf = (mq / "conf.d/callgate.conf").read_text()
    conf, n1 = re.subn(r"^listener 1883 127\.0\.0\.1$", f"listener {tcp} 127.0.0.1", conf, flags=re.M)
    conf, n2 = re.subn(r"^listener 9001$", f"listener {ws} 127.0.0.1", conf, flags=re.M)
    assert (n1, n2) == (1, 1), "deploy/mosquitto/callgate.conf changed its listeners"
    # What Debian's mosquitto.conf adds around conf.d; `user root` so that the broker, started as
    # root here, can still read the files under pytest's private tmp folder.
    main = tmp_path / "mosquitto.conf"
    main.write_text(f"persistence_location {tmp_path}/\nlog_dest stderr\nlog_type all\nuser root\n{conf}")
    log = open(tmp_path / "mosquitto.log", "wb")
    proc = subprocess.Popen(["mosquitto", "-c", str(main)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", ws), timeout=0.2).close()
            socket.create_connection(("127.0.0.1", tcp), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "mosquitto did not open its listeners"
            time.sleep(0.02)
    gw_password = load_config_filled(p / "etc/callgate.toml").mqtt.password
    yield {"tcp": tcp, "ws": ws, "gw_password": gw_password, "log": tmp_path / "mosquitto.log"}
    proc.terminate()
    proc.wait(WAIT)
    log.close()


def test_broker_refuses_strangers(broker):
    for user, password in ((None, None), ("alice", "wrong"), ("callgate", "CHANGE-ME")):
        c = Client(broker["tcp"], user, password)
        try:
            assert not c.accepted, (user, password)
        finally:
            c.close()


def test_acl_confines_each_agent_to_its_own_topics(broker):
    gw = Client(broker["tcp"], "callgate", broker["gw_password"])      # the password install.sh generated
    alice = Client(broker["ws"], "alice", "alice-pw", transport="websockets")   # agents come over WebSockets
    bob = Client(broker["ws"], "bob", "bob-pw", transport="websockets")
    try:
        assert gw.accepted and alice.accepted and bob.accepted
        gw.subscribe("callgate/#")
        bob.subscribe("callgate/+/agent/bob/#")
        alice.subscribe("callgate/+/agent/+/offer")          # tries to see everybody's offers
        alice.subscribe("callgate/+/queue/+")
        alice.subscribe("callgate/+/status")

        # alice forges a command for bob and the gateway status: both dropped
        alice.publish("callgate/gw1/agent/bob/cmd", b'{"action": "logout"}')
        alice.publish("callgate/gw1/status", b'{"online": false}', retain=True)
        alice.publish("callgate/gw1/agent/alice/audio/c-1", b"\x00" * 172)
        alice.publish("callgate/gw1/agent/alice/cmd", b'{"action": "available"}')
        # her own command arrives, after her audio and without anything she was not allowed to send
        assert gw.wait_for("callgate/gw1/agent/alice/cmd") == ["callgate/gw1/agent/alice/audio/c-1",
                                                               "callgate/gw1/agent/alice/cmd"]

        # offers: each agent reads only its own
        gw.publish("callgate/gw1/agent/bob/offer", b'{"contact_id": "c-2"}')
        gw.publish("callgate/gw1/agent/alice/offer", b'{"contact_id": "c-1"}')
        assert alice.wait_for("callgate/gw1/agent/alice/offer") == ["callgate/gw1/agent/alice/offer"]
        assert bob.wait_for("callgate/gw1/agent/bob/offer") == ["callgate/gw1/agent/bob/offer"]

        # shared state is readable by every agent
        gw.publish("callgate/gw1/queue/support", b'{"depth": 1}', retain=True)
        gw.publish("callgate/gw1/status", b'{"online": true}', retain=True)
        assert "callgate/gw1/queue/support" in alice.wait_for("callgate/gw1/status")
        assert dict(alice.received)["callgate/gw1/status"] == b'{"online": true}'
    finally:
        for c in (gw, alice, bob):
            c.close()
    assert b"Denied PUBLISH from t-alice" in broker["log"].read_bytes()
