/**
 * HMAC-SHA256 for short values at streaming speed. node:crypto's createHmac costs ~5 µs per call
 * (object set-up and key processing each time); masking a million rows × two columns with `hash` or
 * `fake` needs far less. Here the key's inner and outer pad blocks are compressed once per key, so a
 * value of up to 55 bytes costs two SHA-256 compressions in plain JavaScript. Checked against
 * node:crypto in test/shared/masking/hmac.test.ts.
 */
import { createHash } from 'node:crypto';

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

const IV = new Uint32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

const W = new Uint32Array(64);

/** One SHA-256 compression of the 64-byte block at `offset` into `state`. */
function compress(state: Uint32Array, block: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    W[i] =
      ((block[j] as number) << 24) |
      ((block[j + 1] as number) << 16) |
      ((block[j + 2] as number) << 8) |
      (block[j + 3] as number);
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15] as number;
    const w2 = W[i - 2] as number;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = ((W[i - 16] as number) + s0 + (W[i - 7] as number) + s1) | 0;
  }
  let a = state[0] as number;
  let b = state[1] as number;
  let c = state[2] as number;
  let d = state[3] as number;
  let e = state[4] as number;
  let f = state[5] as number;
  let g = state[6] as number;
  let h = state[7] as number;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + (K[i] as number) + (W[i] as number)) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = ((state[0] as number) + a) | 0;
  state[1] = ((state[1] as number) + b) | 0;
  state[2] = ((state[2] as number) + c) | 0;
  state[3] = ((state[3] as number) + d) | 0;
  state[4] = ((state[4] as number) + e) | 0;
  state[5] = ((state[5] as number) + f) | 0;
  state[6] = ((state[6] as number) + g) | 0;
  state[7] = ((state[7] as number) + h) | 0;
}

const state = new Uint32Array(8);
const tail = new Uint8Array(128);
const tailView = new DataView(tail.buffer);

/**
 * Continues a SHA-256 from `start` (after `prefixLength` bytes) over data[0, length) and writes the
 * digest to `out`. Works in module-level buffers: no allocation per value.
 */
function finish(
  start: Uint32Array,
  prefixLength: number,
  data: Uint8Array,
  length: number,
  out: Uint8Array,
): void {
  state.set(start);
  let offset = 0;
  for (; offset + 64 <= length; offset += 64) compress(state, data, offset);
  const rest = length - offset;
  const size = rest < 56 ? 64 : 128;
  tail.fill(0, 0, size);
  for (let i = 0; i < rest; i++) tail[i] = data[offset + i] as number;
  tail[rest] = 0x80;
  const bits = (prefixLength + length) * 8;
  tailView.setUint32(size - 8, Math.floor(bits / 0x1_0000_0000));
  tailView.setUint32(size - 4, bits >>> 0);
  compress(state, tail, 0);
  if (size === 128) compress(state, tail, 64);
  for (let i = 0; i < 8; i++) {
    const w = state[i] as number;
    out[i * 4] = w >>> 24;
    out[i * 4 + 1] = (w >>> 16) & 0xff;
    out[i * 4 + 2] = (w >>> 8) & 0xff;
    out[i * 4 + 3] = w & 0xff;
  }
}

interface PreparedKey {
  inner: Uint32Array;
  outer: Uint32Array;
}

const prepared = new WeakMap<Uint8Array, PreparedKey>();

function prepare(key: Uint8Array): PreparedKey {
  let p = prepared.get(key);
  if (!p) {
    const k = key.length > 64 ? new Uint8Array(createHash('sha256').update(key).digest()) : key;
    const ipad = new Uint8Array(64).fill(0x36);
    const opad = new Uint8Array(64).fill(0x5c);
    for (let i = 0; i < k.length; i++) {
      ipad[i] = (ipad[i] as number) ^ (k[i] as number);
      opad[i] = (opad[i] as number) ^ (k[i] as number);
    }
    const inner = Uint32Array.from(IV);
    compress(inner, ipad, 0);
    const outer = Uint32Array.from(IV);
    compress(outer, opad, 0);
    p = { inner, outer };
    prepared.set(key, p);
  }
  return p;
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);
const innerDigest = new Uint8Array(32);

/** HMAC-SHA256(key, input) — a string is taken as its UTF-8 bytes. Keep the key object: it is prepared once. */
export function hmacSha256(key: Uint8Array, input: string | Uint8Array): Uint8Array {
  const p = prepare(key);
  let bytes: Uint8Array;
  let length: number;
  if (typeof input === 'string') {
    if (input.length * 3 > scratch.length) scratch = new Uint8Array(input.length * 3);
    length = encoder.encodeInto(input, scratch).written;
    bytes = scratch;
  } else {
    bytes = input;
    length = input.length;
  }
  finish(p.inner, 64, bytes, length, innerDigest);
  const out = new Uint8Array(32);
  finish(p.outer, 64, innerDigest, 32, out);
  return out;
}
