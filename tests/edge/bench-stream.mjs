// Streaming postcheck in the wasm package under Node.js (issue 16), next to one-shot `postcheck`
// of the same text: the text of the engine's criterion bench (engine/benches/stream.rs: the
// corpus' `some` 1 KB request repeated to 64 KiB, tool `web.chat`, the default policy), fed in
// 16 B, 256 B and 4 KiB chunks. Two stream paths: `warden.governStream` (web streams, what
// callers use) and the `WardenStream` it drives (`openStream` / `push` / `finish`, the wasm
// calls alone). Added latency per chunk = (stream time − one-shot time) / chunks. Bounded: a
// fixed number of runs (5 warm-up, median of 25), a few seconds in all. Prints one JSON line
// per measurement.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Warden } from 'warden-wasm';
import { ROOT } from './common.mjs';

const SAMPLES = 25;
const WARMUP = 5;
const TOOL = 'web.chat';

const corpus = JSON.parse(readFileSync(join(ROOT, 'tests', 'corpus', 'requests_1k.json'), 'utf8'));
let text = '';
while (text.length < 64 << 10) text += `${corpus.some}\n`;
const bytes = new TextEncoder().encode(text);
// `{}`: the engine's default policy, as the native bench (`Policy::default()`).
const warden = new Warden({ piiTokenSalt: 'bench-salt', policy: {} });
const decoder = new TextDecoder();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function time(f, samples = SAMPLES) {
  for (let i = 0; i < WARMUP; i++) await f();
  const ms = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await f();
    ms.push(performance.now() - t);
  }
  return median(ms);
}

function chunks(size) {
  const out = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** The WardenStream calls alone: push every chunk, then finish; the output bytes. */
function pushAll(pieces) {
  const stream = warden.openStream(TOOL, undefined, 'text', undefined);
  const out = [];
  for (const piece of pieces) out.push(stream.push(piece));
  out.push(stream.finish());
  stream.free();
  return out;
}

/** `governStream` over a ReadableStream of `pieces`, read to the end. */
async function governAll(pieces) {
  let i = 0;
  const source = new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]);
      else controller.close();
    },
  });
  const out = [];
  for await (const piece of warden.governStream(source, { tool: TOOL })) out.push(piece);
  return out;
}

const joined = (parts) => decoder.decode(Buffer.concat(parts));

const oneShot = warden.postcheck({ tool: TOOL, raw_text: text });
const oneShotMs = await time(() => warden.postcheck({ tool: TOOL, raw_text: text }));
const mib = bytes.length / (1 << 20);
const runtime = `wasm (node ${process.version})`;
console.log(
  JSON.stringify({ runtime, path: 'postcheck (one-shot)', bytes: bytes.length, decision: oneShot.decision, ms: +oneShotMs.toFixed(3), mib_s: +(mib / (oneShotMs / 1000)).toFixed(1) }),
);
for (const size of [16, 256, 4096]) {
  const pieces = chunks(size);
  // Same output as one-shot, or the figures measure something else.
  for (const [path, parts] of [['WardenStream', pushAll(pieces)], ['governStream', await governAll(pieces)]]) {
    if (joined(parts) !== oneShot.raw_text_out) throw new Error(`${path} ${size} B: output differs from one-shot postcheck`);
  }
  for (const [path, run] of [
    ['WardenStream', () => pushAll(pieces)],
    ['governStream', () => governAll(pieces)],
  ]) {
    const ms = await time(run);
    console.log(
      JSON.stringify({
        runtime,
        path,
        chunk_bytes: size,
        chunks: pieces.length,
        ms: +ms.toFixed(3),
        mib_s: +(mib / (ms / 1000)).toFixed(1),
        added_per_chunk_us: +(((ms - oneShotMs) * 1000) / pieces.length).toFixed(2),
      }),
    );
  }
}
