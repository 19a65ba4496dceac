// callgate agent dashboard: signs an agent in over MQTT (docs/mqtt-api.md), shows its state,
// the queues, offers and real-time metrics, places outbound calls, transfers calls, and carries the
// call audio. Plain JS module, no build step.

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
  dialPending: false,
  progress: new Map(),      // contact id -> last …/agent/<id>/call message (calls the gateway dials)
  lastCall: null,           // how the last call ended, in words
  agents: new Map(),        // other agent id -> its …/agent/<id>/state, when the broker lets us read it
  metrics: null,            // {data, received}: the last …/metrics payload
  subscribed: new Set(),    // topics subscribed since sign-in
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
  metricsDrawn: 0,
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
  callStages: [],           // "<contact id>:<stage>" of each …/call progress message
  lastCall: null,
  metrics: null,
  recording: null,          // the call's recording as last replied: 'recording' | 'paused' | 'off'
  permissions: () => app.permissions,
  subscribed: () => [...app.subscribed].map((t) => t.slice(app.prefix.length)).sort(),
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
                      Missed: 'Missed a call', Break: 'Break'};
const STATE_HINTS = {
  Missed: 'You did not answer an offered call in time, so no calls are offered to you. '
          + 'Press Available to take calls again.',
  Break: 'No calls are offered to you during a break. Press Available when you are back.',
};
// Refusals (docs/mqtt-api.md, error codes) in words; the gateway's own message follows.
const CODE_WORDS = {
  line_busy: 'the line is busy', no_free_line: 'no line is free', bad_number: 'that is not a phone number',
  unknown_queue: 'there is no such queue', unknown_line: 'there is no such line', queue_full: 'that queue is full',
  unknown_agent: 'there is no such agent', agent_offline: 'that agent is offline', agent_busy: 'that agent is busy',
  bad_state: 'not possible now', not_your_contact: 'that is not your call', not_supported: 'the gateway cannot do this yet',
  not_on_call: 'you are not on a call', timeout: 'the gateway did not answer', not_connected: 'not connected',
};
const STAGE_WORDS = {dialing: 'Dialing…', ringing: 'Ringing…', answered: 'Answered', ended: 'Ended'};
const OUTCOME_WORDS = {busy: 'busy', no_answer: 'no answer', no_carrier: 'the network dropped the call',
                       rejected: 'rejected by the customer', unreachable: 'the number cannot be reached',
                       cancelled: 'hung up before it was answered', no_free_line: 'no line was free'};
const REASON_WORDS = {customer_hung_up: 'the customer hung up', agent_hung_up: 'you hung up',
                      transferred: 'transferred'};

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
  } else if (rest.startsWith('agent/') && rest.endsWith('/state')) {
    onOtherAgentState(rest.slice(6, -6), payload);
  } else if (rest === `${mine}call`) {
    const data = parseJson(payload, t);
    if (data) onCallProgress(data);
  } else if (rest === 'metrics') {
    onMetrics(payload);
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

/** Why a command was refused, in words: "the line is busy", "not allowed: missing permission …". */
function inWords(reply) {
  if (reply.code === 'forbidden') return `not allowed: missing permission ${reply.missing_permission || 'unknown'}`;
  return CODE_WORDS[reply.code] || reply.code || 'refused';
}

function refusal(head, reply) {
  const words = inWords(reply);
  return `${head}: ${words}.${reply.error && reply.error !== words ? ` ${reply.error}` : ''}`;
}

/** Run a command from a button: disables it while waiting; re-signs in once on not_logged_in. */
async function run(action, extra = {}, button = null, describe = describeFailure) {
  if (button) button.disabled = true;
  try {
    let reply = await command(action, extra);
    if (!reply.ok && reply.code === 'not_logged_in' && app.password) {
      const login = await command('login', {password: app.password});
      if (login.ok) reply = await command(action, extra);
    }
    if (reply.ok) clearError(); else showError(describe(action, reply));
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
    app.agents.clear();
    app.subscribed.clear();
    app.metrics = null;
    app.lastCall = null;
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
    if (Array.isArray(reply.permissions)) app.permissions = reply.permissions;
    await syncSubscriptions();
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
  app.agents.clear();
  app.subscribed.clear();
  app.progress.clear();
  app.metrics = null;
  app.lastCall = null;
  setConn('idle', 'Not connected');
  render();
}

// ------------------------------------------------------------------ agent state, offers

/** The topics this agent reads: other agents' states (for transfers and metrics) and the metrics only
 * when its security profile allows what they serve. */
function wantedTopics() {
  const topics = [topic('agent', app.agentId, 'offer'), topic('agent', app.agentId, 'call'),
                  topic('queue', '+'), topic('status')];
  const others = can('transfer') || can('view_realtime_metrics');
  topics.push(others ? topic('agent', '+', 'state') : topic('agent', app.agentId, 'state'));
  if (can('view_realtime_metrics')) topics.push(topic('metrics'));
  return topics;
}

async function syncSubscriptions() {
  const client = app.client;
  const todo = wantedTopics().filter((t) => !app.subscribed.has(t));
  if (!client || !todo.length) return;
  for (const t of todo) app.subscribed.add(t);
  try {
    await subscribe(client, todo, 1);
  } catch (e) {
    for (const t of todo) app.subscribed.delete(t);
    showError(`Cannot subscribe to ${todo.join(', ')}: ${e.message}`);
  }
}

function onAgentState(s) {
  app.agent = s;
  if (Array.isArray(s.permissions)) {
    const changed = !app.permissions || app.permissions.join() !== s.permissions.join();
    app.permissions = s.permissions;
    if (changed && app.loggedIn) syncSubscriptions();
  }
  hooks.state = s.state;
  if (s.offer) {
    onOffer(s.offer);
  } else if (app.offer) {
    app.offer = null;
  }
  if (s.state === 'OnCall') {
    if (!app.call && !app.acceptPending && !app.dialPending) {
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
                       queue: offer.queue, seqOut: 0, rxSeq: null,
                       kind: offer.kind || offer.initiation_method || 'INBOUND',
                       callbackNumber: offer.callback_number || null, line: offer.line || null,
                       callerId: offer.caller_id || null, stage: null});
  app.call = call;
  app.lastCall = null;
  hooks.callId = call.callId;
  const known = app.progress.get(call.contactId);
  if (known) applyProgress(call, known);
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

// ------------------------------------------------------------------ outbound calls, progress, transfers

/** Place an outbound call: the audio is prepared inside the click, as for accepting an offer. */
function onDial(ev) {
  ev.preventDefault();
  if (app.call || app.dialPending) return;
  const number = $('dial-number').value.trim();
  if (!/[0-9]/.test(number)) { showError('Type the number to call.'); return; }
  const queue = $('dial-queue').value;
  let audioError = null;
  try { audio.prepare(); } catch (e) { audioError = e.message; }
  app.dialPending = true;
  app.lastCall = null;
  const micTrack = audioError ? null : audio.startCapture(onCaptureFrame).catch((e) => {
    showError(`Microphone unavailable: ${e.message}. The customer will not hear you.`);
    return null;
  });
  const extra = queue ? {number, queue} : {number};
  run('dial', extra, $('dial'), (action, reply) => refusal(`Call to ${number} not placed`, reply)).then((reply) => {
    app.dialPending = false;
    if (!reply.ok) {
      audio.stop();
      render();
      return;
    }
    $('dial-number').value = '';
    startCall({call_id: reply.contact_id, contact_id: reply.contact_id, caller: reply.number || number,
               queue: reply.queue, kind: 'OUTBOUND', line: reply.line, caller_id: reply.caller_id},
              audioError, micTrack);
  });
}

function applyProgress(call, p) {
  if (p.stage === 'answered' && call.stage !== 'answered') call.started = performance.now();
  call.stage = p.stage;
  if (p.line) call.line = p.line;
  call.attempt = p.attempt && p.attempts ? `attempt ${p.attempt} of ${p.attempts}` : null;
}

/** How a call the gateway dialled ended, in words. */
function outcomeText(p) {
  const who = `${p.kind === 'CALLBACK' ? 'Callback' : 'Call'} to ${p.number || 'the customer'}`;
  const outcome = String(p.outcome || '');
  let text = outcome === 'answered'
    ? `${who} ended: ${REASON_WORDS[p.reason] || String(p.reason || 'hung up').replace(/_/g, ' ')}`
    : `${who} not answered: ${OUTCOME_WORDS[outcome] || outcome.replace(/_/g, ' ') || 'unknown'}`;
  if (p.attempt && p.attempts) text += ` (attempt ${p.attempt} of ${p.attempts})`;
  if (p.retry_at) text += `; the gateway tries again at ${new Date(p.retry_at * 1000).toLocaleTimeString()}`;
  return `${text}.`;
}

function onCallProgress(p) {
  if (typeof p.contact_id !== 'string' || typeof p.stage !== 'string') return;
  hooks.callStages.push(`${p.contact_id}:${p.stage}`);
  app.progress.set(p.contact_id, p);
  while (app.progress.size > 20) app.progress.delete(app.progress.keys().next().value);
  if (app.call && app.call.contactId === p.contact_id) applyProgress(app.call, p);
  if (p.stage === 'ended') app.lastCall = outcomeText(p);
  render();
}

async function onTransfer() {
  const call = app.call;
  if (!call || !call.contactId) return;
  const target = $('transfer-target').value;
  let extra = null;
  if (target.startsWith('queue:')) extra = {to_queue: target.slice(6)};
  else if (target.startsWith('agent:')) extra = {to_agent: target.slice(6)};
  else if (target === 'other') {
    const id = $('transfer-agent-id').value.trim();
    if (id) extra = {to_agent: id};
  }
  if (!extra) { showError('Choose the queue or the agent to transfer the call to.'); return; }
  const option = $('transfer-target').selectedOptions[0];
  const where = extra.to_queue ? `queue ${option.dataset.name}` : `agent ${extra.to_agent}`;
  const reply = await run('transfer', {contact_id: call.contactId, ...extra}, $('transfer'),
                          (action, r) => refusal(`Transfer to ${where} failed`, r));
  if (!reply.ok) return;
  if (app.call === call) endCall();     // the After call work state may have ended it already
  app.lastCall = `Transferred ${call.callbackNumber || call.caller || 'the call'} to ${where}.`;
  render();
}

function onOtherAgentState(agentId, payload) {
  if (!payload.byteLength) { app.agents.delete(agentId); render(); return; }
  const data = parseJson(payload, topic('agent', agentId, 'state'));
  if (!data) return;
  app.agents.set(agentId, data);
  render();
}

function onMetrics(payload) {
  const data = payload.byteLength ? parseJson(payload, topic('metrics')) : null;
  app.metrics = data ? {data, received: performance.now()} : null;
  hooks.metrics = data;
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

/** Every queue the page has heard of (retained queue topics, the gateway status), sorted by name. */
function knownQueues() {
  const names = new Map();
  for (const id of (app.gateway && Array.isArray(app.gateway.queues) ? app.gateway.queues : [])) names.set(id, id);
  for (const [id, {data}] of app.queues) names.set(id, data.name || id);
  return [...names].map(([id, name]) => ({id, name})).sort((a, b) => a.name.localeCompare(b.name));
}

/** Replace a select's options (after its first, the placeholder) only when they changed; keeps the choice. */
function fillSelect(select, groups) {
  const signature = JSON.stringify(groups);
  if (select.dataset.signature === signature) return;
  const value = select.value;
  select.dataset.signature = signature;
  select.length = 1;
  for (const child of [...select.children].slice(1)) child.remove();
  for (const {label, options} of groups) {
    if (!options.length) continue;
    const parent = label ? select.appendChild(el('optgroup', {label})) : select;
    for (const o of options) {
      const option = new Option(o.text, o.value);
      if (o.name) option.dataset.name = o.name;
      parent.append(option);
    }
  }
  select.value = [...select.options].some((o) => o.value === value) ? value : '';
}

function agentText(id, s) {
  const state = s.state === 'Break' && s.break_state ? `Break: ${s.break_state}` : STATE_LABELS[s.state] || s.state;
  return `${s.name || id} (${id}) · ${state || 'unknown'}`;
}

function renderCallControls(call) {
  const queues = knownQueues();
  fillSelect($('dial-queue'), [{options: queues.map((q) => ({value: q.id, text: q.name}))}]);
  const agents = [...app.agents].filter(([id]) => id !== app.agentId).sort((a, b) => a[0].localeCompare(b[0]));
  fillSelect($('transfer-target'), [
    {label: 'Queues', options: queues.map((q) => ({value: `queue:${q.id}`, text: q.name, name: q.name}))},
    {label: 'Agents', options: [
      ...agents.map(([id, s]) => ({value: `agent:${id}`, text: agentText(id, s)})),
      {value: 'other', text: agents.length ? 'Another agent…' : 'An agent (type the id)…'}]},
  ]);
  $('transfer-agent-id').hidden = $('transfer-target').value !== 'other';
  const answered = call && (call.kind === 'INBOUND' || call.kind === 'TRANSFER' || call.stage === 'answered');
  $('transfer-row').hidden = !(call && call.contactId && can('transfer'));
  $('transfer').disabled = !answered;
}

const METRIC_ROWS = [
  ['agents_online', 'Agents online'], ['agents_available', 'Available'], ['agents_on_contact', 'On contact'],
  ['agents_acw', 'After call work'], ['agents_missed', 'Missed'],
];

function renderMetrics() {
  const box = $('metrics');
  app.metricsDrawn = performance.now();
  const m = app.metrics;
  if (!m) { box.replaceChildren(el('p', {class: 'empty'}, 'No metrics published yet.')); return; }
  const age = (performance.now() - m.received) / 1000;
  const queues = m.data.queues && typeof m.data.queues === 'object' ? Object.keys(m.data.queues).sort() : [];
  const columns = [['total', 'All queues', m.data.total || {}],
                   ...queues.map((id) => [id, (app.queues.get(id) || {data: {}}).data.name || id, m.data.queues[id]])];
  const breaks = Object.keys((m.data.total && m.data.total.agents_break) || {});
  const rows = [...METRIC_ROWS.map(([key, label]) => [label, (c) => c[key]]),
                ...breaks.map((name) => [`On break: ${name}`, (c) => (c.agents_break || {})[name]]),
                ['Contacts in queue', (c) => c.contacts_in_queue],
                ['Oldest wait', (c) => (Number(c.contacts_in_queue) > 0 && c.oldest_wait != null
                  ? fmtDuration(Number(c.oldest_wait) + age) : '—')]];
  const keys = [...METRIC_ROWS.map(([key]) => key), ...breaks.map((name) => `break:${name}`),
                'contacts_in_queue', 'oldest_wait'];
  const head = el('tr', {}, el('th', {scope: 'col'}, ''),
                  ...columns.map(([, name]) => el('th', {scope: 'col'}, name)));
  const body = rows.map(([label, value], i) => el('tr', {}, el('th', {scope: 'row'}, label),
    ...columns.map(([id, , counts]) => {
      const v = counts ? value(counts) : null;
      return el('td', {'data-queue': id, 'data-metric': keys[i]}, v == null ? '—' : String(v));
    })));
  const table = el('table', {class: 'metrics'}, el('thead', {}, head), el('tbody', {}, ...body));
  const parts = [table];
  const agents = [...app.agents].sort((a, b) => a[0].localeCompare(b[0]));
  if (agents.length) {
    parts.push(el('ul', {class: 'm-agents', 'aria-label': 'Agents'},
                  ...agents.map(([id, s]) => el('li', {'data-agent': id}, agentText(id, s)))));
  }
  box.replaceChildren(...parts);
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
  if (app.metrics && !$('metrics-panel').hidden && now - app.metricsDrawn >= 1000) renderMetrics();
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
  const hint = signedIn && STATE_HINTS[state] && can('take_calls') ? STATE_HINTS[state] : '';
  $('state-hint').textContent = hint;
  $('state-hint').hidden = !hint;
  hooks.lastCall = app.lastCall;
  $('last-call').textContent = app.lastCall || '';
  $('last-call').hidden = !(signedIn && app.lastCall);
  const busy = state === 'OnCall' || !!app.call;
  renderBreakSelect(breakState, busy);
  $('btn-available').disabled = busy || state === 'Available' || app.acceptPending;
  $('btn-offline').disabled = busy || state === 'Offline' || app.acceptPending;
  $('btn-available').classList.toggle('current', state === 'Available');
  $('btn-available').hidden = !can('take_calls');
  $('accept').hidden = $('reject').hidden = $('ready').hidden = !can('take_calls');
  $('btn-offline').classList.toggle('current', state === 'Offline');

  $('dial-panel').hidden = !(signedIn && can('make_outbound_calls'));
  $('dial').disabled = busy || app.dialPending || app.acceptPending || !!app.offer;
  $('dial').textContent = app.dialPending ? 'Calling…' : 'Call';

  const offer = signedIn && app.offer && !app.call ? app.offer.data : null;
  $('offer').hidden = !offer;
  if (offer) {
    const callback = offer.initiation_method === 'CALLBACK';
    $('offer-label').textContent = callback ? 'Callback request'
      : offer.initiation_method === 'TRANSFER' ? 'Transferred call' : 'Incoming call';
    $('offer-caller').textContent = callback ? `Callback to ${offer.callback_number || offer.caller}`
      : offer.caller || 'unknown number';
    $('offer-note').textContent = callback ? 'When you accept, the gateway calls the customer and connects you.' : '';
    $('offer-note').hidden = !callback;
    $('offer-queue').textContent = offer.queue || '';
    $('offer-line').textContent = offer.line || '';
    $('accept').disabled = app.acceptPending;
    $('reject').disabled = app.acceptPending;
  }

  const call = signedIn ? app.call : null;
  $('call').hidden = !call;
  if (!call) hooks.recording = null;
  renderCallControls(call);
  if (call) {
    const dialled = call.kind === 'OUTBOUND' || call.kind === 'CALLBACK';
    $('call-label').textContent = call.kind === 'CALLBACK' ? 'Callback to'
      : call.kind === 'OUTBOUND' && call.stage !== 'answered' ? 'Calling'
        : call.kind === 'TRANSFER' ? 'Transferred call with' : 'On call with';
    $('call-caller').textContent = call.callbackNumber || call.caller || 'unknown number';
    $('call-queue').textContent = [call.queue && `queue ${call.queue}`, dialled && call.line && `line ${call.line}`,
                                   call.callerId && `the customer sees ${call.callerId}`].filter(Boolean).join(' · ');
    const stage = dialled ? STAGE_WORDS[call.stage] || 'Placing the call…' : '';
    $('call-progress').textContent = stage && call.attempt ? `${stage} (${call.attempt})` : stage;
    $('call-progress').dataset.stage = call.stage || '';
    $('call-progress').hidden = !stage;
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
  $('metrics-panel').hidden = !(signedIn && can('view_realtime_metrics'));
  renderQueues();
  if (!$('metrics-panel').hidden) renderMetrics();
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
  $('dial-form').addEventListener('submit', onDial);
  $('transfer').addEventListener('click', onTransfer);
  $('transfer-target').addEventListener('change', () => {
    $('transfer-agent-id').hidden = $('transfer-target').value !== 'other';
    if (!$('transfer-agent-id').hidden) $('transfer-agent-id').focus();
  });
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
