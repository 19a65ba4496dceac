"""`callgate status`: read the retained state the running daemon publishes, and show it."""

from __future__ import annotations

import json
import threading
import time

from gateway.cli.output import table, when

QUIET_AFTER = 0.3      # retained messages come in a burst; stop this long after the last one


def _broker_of(cfg) -> tuple[str, int]:
    state_file = cfg.data_dir / "daemon.json"
    if state_file.exists():
        try:
            state = json.loads(state_file.read_text())
            return state["mqtt_host"], int(state["mqtt_port"])
        except (ValueError, KeyError):
            pass
    if cfg.mqtt.embedded:
        return cfg.mqtt.embedded_host, cfg.mqtt.embedded_tcp_port
    return cfg.mqtt.host, cfg.mqtt.port


def collect_status(cfg, timeout: float = 2.0) -> dict:
    import paho.mqtt.client as paho
    host, port = _broker_of(cfg)
    base = f"callgate/{cfg.gateway_id}"
    out: dict = {"gateway": cfg.gateway_id, "broker": f"{host}:{port}", "reachable": False,
                 "status": None, "lines": {}, "queues": {}, "agents": {}, "metrics": None}
    last = [time.monotonic()]
    connected = threading.Event()

    def on_connect(client, userdata, flags, rc, props):
        if not rc.is_failure:
            connected.set()
            client.subscribe(f"{base}/#", 1)

    def on_message(client, userdata, msg):
        last[0] = time.monotonic()
        if not msg.retain:
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        parts = msg.topic[len(base) + 1:].split("/")
        if parts == ["status"]:
            out["status"] = payload
        elif parts == ["metrics"]:
            out["metrics"] = payload
        elif len(parts) == 2 and parts[0] == "line":
            out["lines"][parts[1]] = payload
        elif len(parts) == 2 and parts[0] == "queue":
            out["queues"][parts[1]] = payload
        elif len(parts) == 3 and parts[0] == "agent" and parts[2] == "state":
            out["agents"][parts[1]] = payload

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if cfg.mqtt.username:
        client.username_pw_set(cfg.mqtt.username, cfg.mqtt.password)
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        out["error"] = f"cannot reach MQTT broker {host}:{port}: {exc}"
        return out
    client.loop_start()
    try:
        if not connected.wait(timeout):
            out["error"] = f"MQTT broker {host}:{port} did not accept the connection within {timeout} s"
            return out
        out["reachable"] = True
        last[0] = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - last[0] < QUIET_AFTER:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    if out["status"] is None:
        out["error"] = f"no gateway {cfg.gateway_id!r} has published on {host}:{port} (is the daemon running?)"
    return out


def print_status(s: dict) -> None:
    if s.get("error"):
        print(f"error: {s['error']}")
    st = s.get("status") or {}
    online = "online" if st.get("online") else "OFFLINE"
    print(f"gateway {s['gateway']}: {online}  broker {s['broker']}  version {st.get('version', '-')}  "
          f"since {when(st.get('started')) or '-'}")
    if s["lines"]:
        print("\nLINES")
        rows = []
        for ln in s["lines"].values():
            h = ln.get("health") or {}
            signal = f"{h['dbm']} dBm {'▮' * h.get('bars', 0)}" if h.get("dbm") is not None else "-"
            ims = {True: "yes", False: "no"}.get(h.get("ims"), "-")
            rows.append(dict(ln, signal=signal, reg=h.get("registration", "-"), ims=ims,
                             port=ln.get("at_port") or "-", recov=str(h.get("recoveries", 0))))
        print(table(rows, [("line", "LINE"), ("state", "STATE"), ("profile", "PROFILE"), ("model", "MODEL"),
                           ("port", "AT PORT"), ("reg", "NETWORK"), ("signal", "SIGNAL"), ("ims", "VOLTE"),
                           ("recov", "RECOVERIES"), ("call_id", "CALL"), ("error", "LAST ERROR")]))
    if s["queues"]:
        print("\nQUEUES")
        rows = [dict(q, oldest=f"{q.get('oldest_wait') or 0:.0f}s") for q in s["queues"].values()]
        print(table(rows, [("queue", "QUEUE"), ("name", "NAME"), ("depth", "WAITING"), ("oldest", "OLDEST WAIT")]))
    if s.get("metrics"):
        print("\nREAL-TIME METRICS")
        print(metrics_table(s["metrics"]))
    if s["agents"]:
        print("\nAGENTS")
        rows = [dict(a, since_h=when(a.get("since")),
                     state=f"{a.get('state')} ({a['break_state']})" if a.get("break_state") else a.get("state"))
                for a in s["agents"].values()]
        print(table(rows, [("agent", "AGENT"), ("name", "NAME"), ("state", "STATE"), ("contact_id", "CONTACT"),
                           ("since_h", "SINCE")]))


def metrics_table(metrics: dict) -> str:
    """One row per queue and a TOTAL row: agents by state (a column per break state), waiting contacts."""
    rows = [("TOTAL", metrics.get("total") or {})] + sorted((metrics.get("queues") or {}).items())
    breaks = list(dict.fromkeys(name for _, m in rows for name in (m.get("agents_break") or {})))
    out = []
    for name, m in rows:
        row = {"queue": name, "oldest": f"{m.get('oldest_wait') or 0:.0f}s"}
        row.update({key: str(m.get(key, 0)) for key in ("agents_online", "agents_available", "agents_on_contact",
                                                        "agents_acw", "agents_missed", "contacts_in_queue")})
        row.update({f"break:{b}": str((m.get("agents_break") or {}).get(b, 0)) for b in breaks})
        out.append(row)
    columns = [("queue", "QUEUE"), ("agents_online", "ONLINE"), ("agents_available", "AVAILABLE"),
               ("agents_on_contact", "ON CONTACT"), ("agents_acw", "ACW"), ("agents_missed", "MISSED")]
    columns += [(f"break:{b}", b.upper()) for b in breaks]
    columns += [("contacts_in_queue", "WAITING"), ("oldest", "OLDEST WAIT")]
    return table(out, columns)
