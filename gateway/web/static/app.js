// callgate agent dashboard: signs an agent in over MQTT (docs/mqtt-api.md), shows its state,
// the queues and offers, and carries the call audio. Plain JS module, no build step.

import {ULAW_DECODE} from './g711.js';
import {CallAudio} from './audio.js';

// Tests may shorten the command timeout by defining window.__cgConfig before this module runs.
const COMMAND_TIMEOUT_MS = (window.__cgConfig && window.__cgConfig.commandTimeoutMs) || 5000;
const CONNECT_TIMEOUT_MS = 10000;
const UI_TICK_MS = 200;
const HEADER_BYTES = 12;
const RX_KEEP_SAMPLES = 8000;        // rxSamples(): the last second at 8 kHz
const METER_FLOOR_DB = -60;
const METER_DECAY = 0.85;            // per UI tick
const TOPIC_UNSAFE = /[+#/\u0000]/;

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ state

const app = {
  client: null,
  prefix: '',
  agentId: '',
  password: '',
  loggedIn: false,
  agent: null,              // last …/agent/<id>/state payload
  permissions: null,        // what the agent's security profile allows; null: not told, show everything
  offer: null,              // {data, deadline}
  call: null,               // {callId, contactId, caller, queue, started, seqOut}
  acceptPending: false,
  queues: new Map(),        // queue id -> {data, received}
  gateway: null,            // last …/status payload
  pending: new Map(),       // command id -> {action, resolve, timer}
  cmdCounter: 0,
  session: Math.random().toString(36).slice(2, 8),
  connState: 'idle',
  acwSince: null,           // performance.now() when After call work began
  micLevel: 0,
  rxLevel: 0,
  queuesDrawn: 0,           // performance.now() of the last queue redraw
};

const audio = new CallAudio();
const rxRing = new Int16Array(RX_KEEP_SAMPLES);
let rxWrite = 0;
let rxCount = 0;

const hooks = window.__cg = {
  state: null,
  connected: false,
  rxFrames: 0,
  txFrames: 0,
  lastOffer: null,
  replies: [],
  callId: null,
  recording: null,          // the call's recording as last replied: 'recording' | 'paused' | 'off'
  permissions: () => app.permissions,
  commandTimeoutMs: COMMAND_TIMEOUT_MS,
  rxSamples() {
    const n = Math.min(rxCount, RX_KEEP_SAMPLES);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = rxRing[(rxWrite - n + i + RX_KEEP_SAMPLES) % RX_KEEP_SAMPLES];
    return out;
  },
  rendered: () => audio.rendered(),
  playout: () => audio.playoutStats,
  sampleRate: () => (audio.ctx ? audio.ctx.sampleRate : null),
  micActive: () => audio.micActive,
};

// ------------------------------------------------------------------ helpers

function topic(...parts) { return app.prefix + parts.join('/'); }

function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? `${h}:` : '') + `${mm}:${String(r).padStart(2, '0')}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(text) {
  $('error-text').textContent = text;
  $('error').hidden = false;
}

function clearError() { $('error').hidden = true; }

function setConn(state, text) {
  app.connState = state;
  hooks.connected = state === 'connected';
  const conn = $('conn');
  conn.textContent = text;
  conn.dataset.state = state;
}

function parseJson(buf, where) {
  try {
    const data = JSON.parse(new TextDecoder().decode(buf));
    if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Error('not a JSON object');
    return data;
  } catch (e) {
    console.warn(`ignored payload on ${where}: ${e.message}`);
    return null;
  }
}

const STATE_LABELS = {Offline: 'Offline', Available: 'Available', OnCall: 'On call', AfterCallWork: 'After call work',
                      Missed: 'Missed a call: set yourself Available', Break: 'Break'};

// ------------------------------------------------------------------ MQTT

function connect(wsUrl, agentId, password) {
  if (app.client) { app.client.end(true); app.client = null; }
  setConn('connecting', `Connecting to ${wsUrl}…`);
  const client = mqtt.connect(wsUrl, {
    protocolVersion: 4,
    queueQoSZero: false,
    reconnectPeriod: 1000,
    clean: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    clientId: `cg-agent-${agentId}-${app.session}`,
    username: agentId,
    password,
  });
  app.client = client;
  const current = (fn) => (...args) => { if (client === app.client) fn(...args); };
  const lost = () => setConn('reconnecting', 'Connection lost, reconnecting…');
  client.on('connect', current(() => setConn('connected', `Connected to ${wsUrl}`)));
  client.on('reconnect', current(lost));
  client.on('offline', current(lost));
  client.on('close', current(() => { if (app.connState === 'connected') lost(); }));
  client.on('error', current((err) => {
    setConn('error', `Broker error: ${err.message}`);
    showError(`Broker ${wsUrl}: ${err.message}`);
  }));
  client.on('message', current(onMessage));
  return client;
}

function waitConnected(client) {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`cannot reach the broker within ${CONNECT_TIMEOUT_MS / 1000} s`)); }, CONNECT_TIMEOUT_MS);
    const onConnect = () => { cleanup(); resolve(); };
    const onError = (err) => { cleanup(); reject(err); };
    function cleanup() { clearTimeout(timer); client.off('connect', onConnect); client.off('error', onError); }
    client.on('connect', onConnect);
    client.on('error', onError);
  });
}

function subscribe(client, topics, qos) {
  return new Promise((resolve, reject) => {
    client.subscribe(topics, {qos}, (err) => (err ? reject(err) : resolve()));
  });
}

function onMessage(t, payload) {
  const p = app.prefix;
  if (!t.startsWith(p)) return;
  const rest = t.slice(p.length);
  const mine = `agent/${app.agentId}/`;
  if (rest.startsWith('call/') && rest.endsWith('/audio/out')) {
    onDownlink(rest.slice(5, -10), payload);
  } else if (rest.startsWith('queue/')) {
    onQueue(rest.slice(6), payload);
  } else if (rest === 'status') {
    onGatewayStatus(payload);
  } else if (rest === `${mine}state`) {
    const data = parseJson(payload, t);
    if (data) onAgentState(data);
  } else if (rest === `${mine}offer`) {
    const data = parseJson(payload, t);
    if (data) onOffer(data);
  } else if (rest === `${mine}reply` || rest === 'errors') {
    const data = parseJson(payload, t);
    if (data) onReply(data, rest === 'errors');
  }
}

// ------------------------------------------------------------------ commands

/** Publish a command and resolve with its reply (or a synthetic failure after 5 s). */
function command(action, extra = {}) {
  const client = app.client;
  const id = `r-${app.session}-${++app.cmdCounter}`;
  return new Promise((resolve) => {
    const fail = (code, error) => {
      if (!app.pending.has(id)) return;
      clearTimeout(app.pending.get(id).timer);
      app.pending.delete(id);
      resolve({id, ok: false, action, code, error});
    };
    const timer = setTimeout(
      () => fail('timeout', `no reply from gateway "${$('gateway-id').value}" within ${COMMAND_TIMEOUT_MS / 1000} s; is it running?`),
      COMMAND_TIMEOUT_MS);
    app.pending.set(id, {action, resolve, timer});
    if (!client) { fail('not_connected', 'not connected to the broker'); return; }
    client.publish(topic('agent', app.agentId, 'cmd'), JSON.stringify({id, action, ...extra}), {qos: 1},
                   (err) => { if (err) fail('publish_failed', err.message); });
  });
}

function onReply(reply, viaErrors) {
  if (!viaErrors) hooks.replies.push(reply);
  const waiter = app.pending.get(reply.id);
  if (!waiter) return;
  if (viaErrors) hooks.replies.push(reply);
  clearTimeout(waiter.timer);
  app.pending.delete(reply.id);
  waiter.resolve(reply);
}

function describeFailure(action, reply) {
  const code = reply.code ? ` (${reply.code})` : '';
  const name = action.replace(/_/g, ' ');
  return `${name[0].toUpperCase()}${name.slice(1)} failed: ${reply.error || 'refused'}${code}`;
}

/** Run a command from a button: disables it while waiting; re-signs in once on not_logged_in. */
async function run(action, extra = {}, button = null) {
  if (button) button.disabled = true;
  try {
    let reply = await command(action, extra);
    if (!reply.ok && reply.code === 'not_logged_in' && app.password) {
      const login = await command('login', {password: app.password});
      if (login.ok) reply = await command(action, extra);
    }
    if (reply.ok) clearError(); else showError(describeFailure(action, reply));
    return reply;
  } finally {
    if (button) button.disabled = false;
    render();
  }
}

// ------------------------------------------------------------------ sign-in

async function onLogin(ev) {
  ev.preventDefault();
  clearError();
  const agentId = $('agent-id').value.trim();
  const password = $('password').value;
  const wsUrl = $('broker-url').value.trim();
  const gatewayId = $('gateway-id').value.trim();
  if (!agentId || TOPIC_UNSAFE.test(agentId)) { showError('Enter your agent id (no spaces, "/", "+" or "#").'); return; }
  if (!gatewayId || TOPIC_UNSAFE.test(gatewayId)) { showError('The gateway id must not be empty or contain "/", "+" or "#".'); return; }
  if (!/^wss?:\/\//.test(wsUrl)) { showError('The broker URL must start with ws:// or wss://.'); return; }
  if (typeof mqtt === 'undefined') { showError('mqtt.js is not loaded: run deploy/web-vendor.sh on the gateway.'); return; }
  const button = $('login');
  button.disabled = true;
  button.textContent = 'Signing in…';
  try {
    app.agentId = agentId;
    app.prefix = `callgate/${gatewayId}/`;
    app.queues.clear();
    app.agent = null;
    app.gateway = null;
    const client = connect(wsUrl, agentId, password);
    await waitConnected(client);
    await subscribe(client, [topic('agent', agentId, 'reply'), topic('errors')], 1);
    const reply = await command('login', {password});
    if (!reply.ok) {
      client.end(true);
      app.client = null;
      setConn('idle', 'Not connected');
      showError(describeFailure('sign-in', reply));
      return;
    }
    app.password = password;
    app.loggedIn = true;
    localStorage.setItem('callgate.agent', agentId);
    await subscribe(client, [topic('agent', agentId, 'state'), topic('agent', agentId, 'offer'),
                             topic('queue', '+'), topic('status')], 1);
    if (Array.isArray(reply.permissions)) app.permissions = reply.permissions;
    if (reply.state && !app.agent) { app.agent = {state: reply.state}; hooks.state = reply.state; }
  } catch (e) {
    if (app.client) { app.client.end(true); app.client = null; }
    setConn('error', `Not connected: ${e.message}`);
    showError(`Cannot sign in: ${e.message}`);
  } finally {
    button.disabled = false;
    button.textContent = 'Sign in';
    render();
  }
}

async function onLogout() {
  if (app.call) { showError('Hang up before signing out.'); return; }
  await run('logout', {}, $('logout'));
  endCall();
  if (app.client) app.client.end(true);
  app.client = null;
  app.loggedIn = false;
  app.password = '';
  app.agent = null;
  app.permissions = null;
  app.offer = null;
  hooks.state = null;
  app.queues.clear();
  setConn('idle', 'Not connected');
  render();
}

// ------------------------------------------------------------------ agent state, offers

function onAgentState(s) {
  app.agent = s;
  if (Array.isArray(s.permissions)) app.permissions = s.permissions;
  hooks.state = s.state;
  if (s.offer) {
    onOffer(s.offer);
  } else if (app.offer) {
    app.offer = null;
  }
  if (s.state === 'OnCall') {
    if (!app.call && !app.acceptPending) {
      // Signed in (or reloaded) during a call: no call id, so no audio, but hang-up works.
      app.call = {callId: null, contactId: s.contact_id, caller: s.contact_id || '', queue: '',
                  started: performance.now(), seqOut: 0};
    }
  } else if (app.call) {
    endCall();
  }
  if (s.state === 'AfterCallWork' && app.acwSince == null) app.acwSince = performance.now();
  if (s.state !== 'AfterCallWork') app.acwSince = null;
  render();
}

function onOffer(o) {
  hooks.lastOffer = o;
  if (app.offer && app.offer.data.contact_id === o.contact_id) return;
  const seconds = Number(o.expires_in);
  app.offer = {data: o, deadline: performance.now() + 1000 * (Number.isFinite(seconds) ? seconds : 20)};
  render();
}

function onAccept() {
  const offer = app.offer && app.offer.data;
  if (!offer) return;
  let audioError = null;
  try { audio.prepare(); } catch (e) { audioError = e.message; }   // inside the click: autoplay rule
  app.acceptPending = true;
  const micTrack = audioError ? null : audio.startCapture(onCaptureFrame).catch((e) => {
    showError(`Microphone unavailable: ${e.message}. The caller will not hear you.`);
    return null;
  });
  run('accept', {contact_id: offer.contact_id}, $('accept')).then(async (reply) => {
    app.acceptPending = false;
    if (!reply.ok) {
      audio.stop();
      render();
      return;
    }
    app.offer = null;
    startCall(offer, audioError, micTrack);
  });
}

async function onReject() {
  const offer = app.offer && app.offer.data;
  if (!offer) return;
  const reply = await run('reject', {contact_id: offer.contact_id}, $('reject'));
  if (reply.ok) { app.offer = null; render(); }
}

// ------------------------------------------------------------------ call and audio

async function startCall(offer, audioError, micTrack) {
  const call = app.call && !app.call.callId ? app.call : {started: performance.now()};
  Object.assign(call, {callId: offer.call_id, contactId: offer.contact_id, caller: offer.caller,
                       queue: offer.queue, seqOut: 0, rxSeq: null});
  app.call = call;
  hooks.callId = call.callId;
  rxCount = 0;
  render();
  if (audioError) { showError(`No call audio: ${audioError}`); return; }
  try {
    await audio.startPlayback();
    await subscribe(app.client, [topic('call', call.callId, 'audio', 'out')], 0);
    await micTrack;
  } catch (e) {
    showError(`Call audio failed: ${e.message}`);
  }
  render();
}

function endCall() {
  const call = app.call;
  app.call = null;
  hooks.callId = null;
  audio.stop();
  app.micLevel = 0;
  app.rxLevel = 0;
  if (call && call.callId && app.client) app.client.unsubscribe(topic('call', call.callId, 'audio', 'out'));
}

function onDownlink(callId, message) {
  const call = app.call;
  if (!call || call.callId !== callId || message.byteLength <= HEADER_BYTES) return;
  // mqtt.js hands a view into the whole MQTT packet: honour byteOffset/byteLength and copy.
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const seq = view.getUint32(0, false);
  const n = message.byteLength - HEADER_BYTES;
  const pcm = new Int16Array(n);
  let energy = 0;
  for (let i = 0; i < n; i++) {
    const v = ULAW_DECODE[message[HEADER_BYTES + i]];
    pcm[i] = v;
    rxRing[rxWrite] = v;
    rxWrite = (rxWrite + 1) % RX_KEEP_SAMPLES;
    energy += v * v;
  }
  rxCount += n;
  hooks.rxFrames++;
  app.rxLevel = Math.max(app.rxLevel, Math.sqrt(energy / n) / 32768);
  audio.play(seq, pcm);
}

function onCaptureFrame(bytes, rms) {
  app.micLevel = Math.max(app.micLevel, rms);
  const call = app.call;
  if (!call || !call.callId) return;
  const seq = call.seqOut++;
  // Nothing is queued while offline (queueQoSZero false); stale audio is worse than a gap.
  if (!app.client || !app.client.connected) return;
  const packet = new Uint8Array(HEADER_BYTES + bytes.length);
  const view = new DataView(packet.buffer);
  view.setUint32(0, seq >>> 0, false);
  view.setFloat64(4, performance.timeOrigin + performance.now(), false);
  packet.set(bytes, HEADER_BYTES);
  app.client.publish(topic('agent', app.agentId, 'audio', call.callId), packet, {qos: 0});
  hooks.txFrames++;
}

/** Pause or resume the recording of this call (while the caller reads out a card number, say). */
async function onRecordingToggle() {
  const call = app.call;
  const contactId = call && (call.contactId || (app.agent && app.agent.contact_id));
  if (!contactId) return;
  const action = call.recording === 'paused' ? 'resume_recording' : 'pause_recording';
  const reply = await run(action, {contact_id: contactId}, $('rec-toggle'));
  if (app.call !== call) return;
  if (reply.ok) call.recording = reply.recording;
  else if (reply.code === 'not_recording') call.recording = 'off';
  render();
}

async function onHangup() {
  if (!app.call) return;
  const reply = await run('hangup', {}, $('hangup'));
  if (reply.ok) endCall();
  render();
}

// ------------------------------------------------------------------ queues, gateway status

function onQueue(queueId, payload) {
  if (payload.byteLength === 0) { app.queues.delete(queueId); render(); return; }
  const data = parseJson(payload, topic('queue', queueId));
  if (!data) return;
  app.queues.set(queueId, {data, received: performance.now()});
  render();
}

function onGatewayStatus(payload) {
  app.gateway = payload.byteLength ? parseJson(payload, topic('status')) : null;
  render();
}

// ------------------------------------------------------------------ rendering

function renderQueues() {
  const box = $('queue');
  app.queuesDrawn = performance.now();
  box.replaceChildren();
  if (!app.queues.size) {
    box.append(el('p', {class: 'empty'}, 'No queues published yet.'));
    return;
  }
  const now = performance.now();
  for (const [id, {data, received}] of [...app.queues].sort((a, b) => a[0].localeCompare(b[0]))) {
    const age = (now - received) / 1000;
    const depth = Number(data.depth) || 0;
    const contacts = Array.isArray(data.contacts) ? data.contacts : [];
    const head = el('div', {class: 'q-head'},
      el('span', {class: 'q-name'}, data.name || id),
      el('span', {class: depth ? 'q-depth busy' : 'q-depth'}, `${depth} waiting`));
    const oldest = depth && data.oldest_wait != null
      ? `longest wait ${fmtDuration(Number(data.oldest_wait) + age)}` : 'nobody waiting';
    const list = el('ul', {class: 'q-callers'});
    for (const c of contacts) {
      list.append(el('li', {},
        el('span', {class: 'q-caller'}, c.caller || 'unknown number'),
        el('span', {class: 'q-wait'}, fmtDuration(Number(c.wait || 0) + age))));
    }
    box.append(el('div', {class: 'q', 'data-queue': id}, head, el('div', {class: 'q-oldest'}, oldest), list));
  }
}

function meterWidth(level) {
  if (level <= 0) return 0;
  const db = 20 * Math.log10(level);
  return Math.max(0, Math.min(100, (100 * (db - METER_FLOOR_DB)) / -METER_FLOOR_DB));
}

function renderTick() {
  const now = performance.now();
  if (app.offer) {
    const left = (app.offer.deadline - now) / 1000;
    if (left <= 0) {
      app.offer = null;
      render();
      return;
    }
    $('offer-countdown').textContent = `${Math.ceil(left)} s`;
    const total = Number(app.offer.data.expires_in) || 20;
    $('offer-bar').style.width = `${Math.max(0, Math.min(100, (100 * left) / total))}%`;
  }
  if (app.call) $('call-timer').textContent = fmtDuration((now - app.call.started) / 1000);
  if (app.acwSince != null) $('acw-timer').textContent = fmtDuration((now - app.acwSince) / 1000);
  $('mic-meter').style.width = `${100 - meterWidth(app.micLevel)}%`;   // the unlit part
  $('rx-meter').style.width = `${100 - meterWidth(app.rxLevel)}%`;
  app.micLevel *= METER_DECAY;
  app.rxLevel *= METER_DECAY;
  if (app.queues.size && now - app.queuesDrawn >= 1000) renderQueues();
}

/** Whether the agent's security profile allows a permission (docs/security.md); buttons it does not are hidden. */
function can(permission) { return !app.permissions || app.permissions.includes(permission); }

/** The break-state picker: the gateway's break states (agent state's break_states), the current one selected. */
function renderBreakSelect(current, busy) {
  const select = $('break-select');
  const names = app.agent && Array.isArray(app.agent.break_states) ? app.agent.break_states : [];
  const known = Array.from(select.options).slice(1).map((o) => o.value);
  if (known.join('\n') !== names.join('\n')) {
    select.length = 1;
    for (const name of names) select.add(new Option(name, name));
  }
  select.hidden = !names.length;
  select.value = current || '';
  select.disabled = busy || app.acceptPending;
}

function render() {
  const signedIn = app.loggedIn;
  $('login-panel').hidden = signedIn;
  $('agent-panel').hidden = !signedIn;
  $('queue-panel').hidden = !signedIn;
  const state = app.agent ? app.agent.state : null;
  $('agent-name').textContent = app.agent && app.agent.name ? `${app.agent.name} (${app.agentId})` : app.agentId;
  const badge = $('state');
  const breakState = state === 'Break' && app.agent.break_state ? app.agent.break_state : null;
  badge.textContent = breakState ? `Break: ${breakState}` : state ? STATE_LABELS[state] || state : 'unknown';
  badge.dataset.state = state || 'unknown';
  const busy = state === 'OnCall' || !!app.call;
  renderBreakSelect(breakState, busy);
  $('btn-available').disabled = busy || state === 'Available' || app.acceptPending;
  $('btn-offline').disabled = busy || state === 'Offline' || app.acceptPending;
  $('btn-available').classList.toggle('current', state === 'Available');
  $('btn-available').hidden = !can('take_calls');
  $('accept').hidden = $('reject').hidden = $('ready').hidden = !can('take_calls');
  $('btn-offline').classList.toggle('current', state === 'Offline');

  const offer = signedIn && app.offer && !app.call ? app.offer.data : null;
  $('offer').hidden = !offer;
  if (offer) {
    $('offer-caller').textContent = offer.caller || 'unknown number';
    $('offer-queue').textContent = offer.queue || '';
    $('offer-line').textContent = offer.line || '';
    $('accept').disabled = app.acceptPending;
    $('reject').disabled = app.acceptPending;
  }

  const call = signedIn ? app.call : null;
  $('call').hidden = !call;
  if (!call) hooks.recording = null;
  if (call) {
    $('call-caller').textContent = call.caller || 'unknown number';
    $('call-queue').textContent = call.queue ? `queue ${call.queue}` : '';
    $('call-note').textContent = call.callId ? '' : 'Call audio is not connected on this page (signed in during the call).';
    const rec = call.recording || null;     // known once the gateway has answered a pause or resume
    hooks.recording = rec;
    $('rec-state').dataset.state = rec || 'unknown';
    $('rec-state').textContent = {recording: 'Recording', paused: 'Recording paused', off: 'Not recorded'}[rec] || '';
    $('rec-toggle').hidden = rec === 'off' || !can('control_recording');
    $('rec-toggle').textContent = rec === 'paused' ? 'Resume recording' : 'Pause recording';
  }
  $('acw').hidden = !(signedIn && state === 'AfterCallWork' && !call);

  const gw = app.gateway;
  const gwEl = $('gw-status');
  gwEl.hidden = !signedIn;
  gwEl.textContent = !gw ? 'Gateway: no status' : gw.online ? `Gateway online${gw.version ? ` · v${gw.version}` : ''}` : 'Gateway offline';
  gwEl.dataset.state = gw ? (gw.online ? 'online' : 'offline') : 'unknown';
  renderQueues();
  renderTick();
}

// ------------------------------------------------------------------ start-up

async function loadConfig() {
  try {
    const res = await fetch('config.json', {cache: 'no-store'});
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const cfg = await res.json();
    if (!$('broker-url').value) $('broker-url').value = cfg.ws_url || '';
    if (!$('gateway-id').value) $('gateway-id').value = cfg.gateway_id || '';
  } catch (e) {
    showError(`Could not load config.json (${e.message}); enter the broker URL and gateway id by hand.`);
  }
}

function checkEnvironment() {
  const notes = [];
  if (typeof mqtt === 'undefined') {
    notes.push('mqtt.js is missing on the gateway: run deploy/web-vendor.sh there, then reload this page.');
    $('login').disabled = true;
  }
  if (!window.isSecureContext) {
    notes.push('This page is not a secure context, so the browser blocks the microphone and call audio. '
               + 'Open it over https:// (or on the gateway itself via http://localhost).');
  }
  $('notice').textContent = notes.join(' ');
  $('notice').hidden = !notes.length;
}

function init() {
  $('login-form').addEventListener('submit', onLogin);
  $('btn-available').addEventListener('click', (ev) => run('available', {}, ev.currentTarget));
  $('btn-offline').addEventListener('click', (ev) => run('offline', {}, ev.currentTarget));
  $('break-select').addEventListener('change', (ev) => {
    if (ev.currentTarget.value) run('break', {state: ev.currentTarget.value}, ev.currentTarget);
  });
  $('ready').addEventListener('click', (ev) => run('available', {}, ev.currentTarget));
  $('logout').addEventListener('click', onLogout);
  $('accept').addEventListener('click', onAccept);
  $('reject').addEventListener('click', onReject);
  $('hangup').addEventListener('click', onHangup);
  $('rec-toggle').addEventListener('click', onRecordingToggle);
  $('error-close').addEventListener('click', clearError);
  const remembered = localStorage.getItem('callgate.agent');
  if (remembered && !$('agent-id').value) $('agent-id').value = remembered;
  checkEnvironment();
  setConn('idle', 'Not connected');
  render();
  setInterval(renderTick, UI_TICK_MS);
  loadConfig();
  window.addEventListener('pagehide', () => { audio.stop(); if (app.client) app.client.end(true); });
}

init();
