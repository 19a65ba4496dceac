// G.711 µ-law (ITU-T G.711, continuous 14-bit segment form with bias 0x84), shared by the page
// and the audio worklets. Linear values are 16-bit signed integers.

const BIAS = 0x84;
const CLIP = 32635;

/** 256 decoded values, index = µ-law byte. */
export const ULAW_DECODE = new Int16Array(256);
for (let u = 0; u < 256; u++) {
  const v = ~u & 0xff;
  const exponent = (v >> 4) & 0x07;
  const magnitude = ((((v & 0x0f) << 3) + BIAS) << exponent) - BIAS;
  ULAW_DECODE[u] = v & 0x80 ? -magnitude : magnitude;
}

/** One 16-bit sample to its µ-law byte. */
export function ulawEncode(sample) {
  let s = sample | 0;
  let sign = 0;
  if (s < 0) { s = -s; sign = 0x80; }
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** µ-law bytes to 16-bit samples (a new Int16Array). */
export function ulawDecodeBytes(bytes) {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = ULAW_DECODE[bytes[i]];
  return out;
}
