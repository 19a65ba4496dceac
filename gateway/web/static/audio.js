// Call audio on the main thread: the AudioContext, the two worklet nodes and the microphone.
// prepare() must run synchronously inside a click handler (autoplay rule); everything else may
// run later.

const WORKLET_URL = new URL('./audio-worklets.js', import.meta.url).href;
const ANALYSER_SIZE = 32768;

export class CallAudio {
  constructor() {
    this.ctx = null;
    this.moduleReady = null;
    this.playback = null;
    this.analyser = null;
    this.capture = null;
    this.source = null;
    this.stream = null;
    this.playoutStats = null;
    this.generation = 0;          // bumped by stop(): late getUserMedia results are dropped
  }

  /** Create or resume the AudioContext. Call directly in the user's click handler. */
  prepare() {
    if (!window.AudioContext) throw new Error('this browser has no Web Audio');
    if (!this.ctx) {
      this.ctx = new AudioContext({latencyHint: 'interactive'});
    } else if (this.ctx.state !== 'running') {
      this.ctx.resume();
    }
    if (!this.ctx.audioWorklet) {
      throw new Error('audio worklets are unavailable: open the dashboard over https or from localhost');
    }
    if (!this.moduleReady) this.moduleReady = this.ctx.audioWorklet.addModule(WORKLET_URL);
    return this.ctx;
  }

  /** Start the player (downlink). Resolves once frames can be pushed. */
  async startPlayback() {
    const generation = this.generation;
    await this.moduleReady;
    if (generation !== this.generation) return;
    this.stopPlayback();
    const node = new AudioWorkletNode(this.ctx, 'cg-playback',
                                      {numberOfInputs: 0, outputChannelCount: [1]});
    node.port.onmessage = (ev) => { if (ev.data.type === 'stats') this.playoutStats = ev.data; };
    node.connect(this.ctx.destination);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = ANALYSER_SIZE;
    node.connect(analyser);
    this.playback = node;
    this.analyser = analyser;
  }

  /** Open the microphone and start posting µ-law frames to onFrame(bytes, rms). */
  async startCapture(onFrame) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error('no microphone access: open the dashboard over https or from localhost');
    }
    const generation = this.generation;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false},
    });
    await this.moduleReady;
    if (generation !== this.generation) {
      for (const track of stream.getTracks()) track.stop();
      return null;
    }
    this.stopCapture();
    this.stream = stream;
    this.source = this.ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(this.ctx, 'cg-capture', {numberOfInputs: 1, numberOfOutputs: 0});
    node.port.onmessage = (ev) => { if (ev.data.type === 'frame') onFrame(ev.data.bytes, ev.data.rms); };
    this.source.connect(node);
    this.capture = node;
    return stream.getAudioTracks()[0];
  }

  /** Queue one decoded downlink frame (Int16Array of 8 kHz samples) for playback. */
  play(seq, int16) {
    if (!this.playback) return;
    const pcm = new Float32Array(int16.length);
    for (let i = 0; i < int16.length; i++) pcm[i] = int16[i] / 32768;
    this.playback.port.postMessage({type: 'frame', seq, pcm}, [pcm.buffer]);
  }

  /** The last ~0.7 s the player rendered, at the context rate. */
  rendered() {
    if (!this.analyser) return {rate: this.ctx ? this.ctx.sampleRate : 0, samples: []};
    const buf = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buf);
    return {rate: this.ctx.sampleRate, samples: Array.from(buf)};
  }

  stopPlayback() {
    if (this.playback) {
      this.playback.port.postMessage({type: 'reset'});
      this.playback.disconnect();
      this.playback = null;
    }
    if (this.analyser) { this.analyser.disconnect(); this.analyser = null; }
  }

  stopCapture() {
    if (this.capture) {
      this.capture.port.postMessage({type: 'stop'});
      this.capture.disconnect();
      this.capture = null;
    }
    if (this.source) { this.source.disconnect(); this.source = null; }
    if (this.stream) {
      for (const track of this.stream.getTracks()) track.stop();
      this.stream = null;
    }
  }

  /** Release the microphone and the nodes; the context is suspended for the next call. */
  stop() {
    this.generation++;
    this.stopCapture();
    this.stopPlayback();
    if (this.ctx && this.ctx.state === 'running') this.ctx.suspend();
  }

  get micActive() { return !!(this.stream && this.stream.getAudioTracks().some((t) => t.readyState === 'live')); }
}
