// AudioWorklet processors for call audio (loaded with audioWorklet.addModule).
//
// cg-playback: 8 kHz downlink frames -> adaptive jitter buffer -> windowed-sinc resampler to the
//              context rate. Never assumes a rate: every ratio comes from the global sampleRate.
// cg-capture:  microphone at the context rate -> low-pass -> fractional decimation to 8 kHz ->
//              µ-law -> 160-byte frames posted to the main thread.

import {ulawEncode} from './g711.js';

const LINE_RATE = 8000;
const QUANTUM = 128;

function blackman(u) {  // u in [-1, 1]
  return 0.42 + 0.5 * Math.cos(Math.PI * u) + 0.08 * Math.cos(2 * Math.PI * u);
}

// Polyphase table: row p holds the taps for a read position p/phases past an input sample.
// Taps cover input samples k-half+1 .. k+half around the read position k+frac; each row sums to 1.
function sincTable(taps, phases, cutoff) {
  const half = taps / 2;
  const table = new Float32Array((phases + 1) * taps);
  for (let p = 0; p <= phases; p++) {
    const frac = p / phases;
    let sum = 0;
    for (let t = 0; t < taps; t++) {
      const d = t - half + 1 - frac;
      const x = 2 * cutoff * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const c = Math.abs(d) >= half ? 0 : sinc * blackman(d / half);
      table[p * taps + t] = c;
      sum += c;
    }
    for (let t = 0; t < taps; t++) table[p * taps + t] /= sum;
  }
  return table;
}

// Fractional-position FIR reader over a growing sample buffer (shared by both directions).
class Resampler {
  constructor(taps, phases, cutoff, step) {
    this.taps = taps;
    this.half = taps / 2;
    this.phases = phases;
    this.table = sincTable(taps, phases, cutoff);
    this.step = step;               // input samples per output sample
    this.buf = new Float32Array(16384);
    this.reset();
  }

  reset() {
    this.buf.fill(0, 0, this.half);
    this.len = this.half;           // zero history before the first real sample
    this.pos = this.half;
  }

  /** Input samples not yet consumed by the read position. */
  get pending() { return Math.max(0, this.len - this.pos); }

  canRead() { return Math.floor(this.pos) + this.half < this.len; }

  push(samples) {
    if (this.len + samples.length > this.buf.length) {
      const keep = Math.max(0, Math.floor(this.pos) - this.half + 1);
      this.buf.copyWithin(0, keep, this.len);
      this.len -= keep;
      this.pos -= keep;
      if (this.len + samples.length > this.buf.length) {
        const bigger = new Float32Array(2 * (this.len + samples.length));
        bigger.set(this.buf.subarray(0, this.len));
        this.buf = bigger;
      }
    }
    this.buf.set(samples, this.len);
    this.len += samples.length;
  }

  /** One output sample; call only when canRead(). */
  read() {
    let k = Math.floor(this.pos);
    let phase = Math.round((this.pos - k) * this.phases);
    const base = k - this.half + 1;
    const row = phase * this.taps;
    const buf = this.buf, table = this.table;
    let acc = 0;
    for (let t = 0; t < this.taps; t++) acc += buf[base + t] * table[row + t];
    this.pos += this.step;
    return acc;
  }
}

// ---------------------------------------------------------------- playback

const PREFILL_FRAMES = 2;        // frames queued before playing (again)
const MAX_SEQ_GAP = 4;           // a larger forward jump (or any backward restart) re-prefills
const RESTART_BACKWARDS = 50;    // seq this far behind the last one means a new stream
const TRIM_WINDOW_S = 0.5;       // minimum depth watched over this long; if it stayed above
const TRIM_ABOVE_FRAMES = 2;     // this many frames, the surplus over one frame is dropped
const FLUSH_ABOVE_FRAMES = 8;    // burst: drop straight back to the prefill depth
const STATS_EVERY_S = 0.5;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // Cut-off a little under 4 kHz; 32 taps keep the band flat to ~3 kHz and images far down.
    this.rs = new Resampler(32, 256, 3700 / LINE_RATE, LINE_RATE / sampleRate);
    this.queue = [];
    this.queued = 0;              // samples in this.queue
    this.frameLen = 160;
    this.lastSeq = null;
    this.prefilling = true;
    this.minDepth = Infinity;
    this.windowLeft = TRIM_WINDOW_S * sampleRate;
    this.statsLeft = STATS_EVERY_S * sampleRate;
    this.stats = {played: 0, underruns: 0, dropped: 0, late: 0, jumps: 0, depthMs: 0};
    this.port.onmessage = (ev) => this.onMessage(ev.data);
  }

  onMessage(msg) {
    if (msg.type === 'reset') {
      this.flush();
      this.lastSeq = null;
      return;
    }
    if (msg.type !== 'frame') return;
    const {seq, pcm} = msg;
    if (this.lastSeq !== null) {
      if (seq <= this.lastSeq && this.lastSeq - seq < RESTART_BACKWARDS) {
        this.stats.late++;
        return;
      }
      if (seq > this.lastSeq + MAX_SEQ_GAP || seq < this.lastSeq) {
        this.stats.jumps++;
        this.flush();
      }
    }
    this.lastSeq = seq;
    this.frameLen = pcm.length;
    this.queue.push(pcm);
    this.queued += pcm.length;
    if (this.depth() > FLUSH_ABOVE_FRAMES * this.frameLen) {
      while (this.queue.length && this.depth() > PREFILL_FRAMES * this.frameLen) this.dropHead();
    }
  }

  flush() {
    this.queue = [];
    this.queued = 0;
    this.rs.reset();
    this.prefilling = true;
  }

  dropHead() {
    this.queued -= this.queue.shift().length;
    this.stats.dropped++;
  }

  depth() { return this.queued + this.rs.pending; }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!out) return true;
    const n = out.length;
    if (this.prefilling) {
      if (this.queue.length >= PREFILL_FRAMES) {
        this.prefilling = false;
      } else {
        out.fill(0);
        this.tick(n);
        return true;
      }
    }
    for (let i = 0; i < n; i++) {
      while (!this.rs.canRead()) {
        if (!this.queue.length) {
          out.fill(0, i);
          this.stats.underruns++;
          this.rs.reset();
          this.prefilling = true;
          this.tick(n);
          return true;
        }
        const pcm = this.queue.shift();
        this.queued -= pcm.length;
        this.rs.push(pcm);
        this.stats.played++;
      }
      out[i] = this.rs.read();
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    const depth = this.depth();
    if (depth < this.minDepth) this.minDepth = depth;
    this.tick(n);
    return true;
  }

  tick(n) {
    this.windowLeft -= n;
    if (this.windowLeft <= 0) {
      this.windowLeft = TRIM_WINDOW_S * sampleRate;
      if (!this.prefilling && this.minDepth > TRIM_ABOVE_FRAMES * this.frameLen) {
        let surplus = Math.floor(this.minDepth / this.frameLen) - 1;
        while (surplus-- > 0 && this.queue.length) this.dropHead();
      }
      this.minDepth = Infinity;
    }
    this.statsLeft -= n;
    if (this.statsLeft <= 0) {
      this.statsLeft = STATS_EVERY_S * sampleRate;
      this.stats.depthMs = (1000 * this.depth()) / LINE_RATE;
      this.port.postMessage({type: 'stats', ...this.stats, prefilling: this.prefilling});
    }
  }
}

// ----------------------------------------------------------------- capture

const FRAME_SAMPLES = 160;       // 20 ms at 8 kHz
const CAPTURE_CUTOFF_HZ = 3800;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // 160 taps at 48 kHz (3.3 ms); scaled with the rate so the transition band stays put.
    const taps = Math.max(16, 2 * Math.round(80 * sampleRate / 48000));
    const cutoff = Math.min(CAPTURE_CUTOFF_HZ, 0.45 * sampleRate) / sampleRate;
    this.rs = new Resampler(taps, 256, cutoff, sampleRate / LINE_RATE);
    this.mono = new Float32Array(QUANTUM);
    this.frame = new Uint8Array(FRAME_SAMPLES);
    this.fill = 0;
    this.energy = 0;
    this.running = true;
    this.port.onmessage = (ev) => { if (ev.data && ev.data.type === 'stop') this.running = false; };
  }

  process(inputs) {
    if (!this.running) return false;
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const n = input[0].length;
    if (this.mono.length !== n) this.mono = new Float32Array(n);
    const mono = this.mono;
    mono.set(input[0]);
    if (input.length > 1) {
      for (let c = 1; c < input.length; c++) {
        const ch = input[c];
        for (let i = 0; i < n; i++) mono[i] += ch[i];
      }
      const g = 1 / input.length;
      for (let i = 0; i < n; i++) mono[i] *= g;
    }
    this.rs.push(mono);
    while (this.rs.canRead()) {
      let v = this.rs.read();
      if (v > 1) v = 1; else if (v < -1) v = -1;
      this.energy += v * v;
      this.frame[this.fill++] = ulawEncode(Math.round(v * 32767));
      if (this.fill === FRAME_SAMPLES) {
        const bytes = this.frame;
        this.port.postMessage({type: 'frame', bytes, rms: Math.sqrt(this.energy / FRAME_SAMPLES)},
                              [bytes.buffer]);
        this.frame = new Uint8Array(FRAME_SAMPLES);
        this.fill = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}

registerProcessor('cg-playback', PlaybackProcessor);
registerProcessor('cg-capture', CaptureProcessor);
