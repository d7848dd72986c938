// Precheck latency of the ~1 KB request of bench-request.json in the wasm package under
// Node.js: `warden.precheck(request)` per iteration, i.e. what a Vercel middleware or a Node
// service pays in-process (JSON in and out of wasm included). The native twin is
// adapters/wasm/benches/precheck.rs. Prints one JSON line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Warden } from 'warden-wasm';
import { ROOT } from './common.mjs';

const request = JSON.parse(readFileSync(join(ROOT, 'tests', 'edge', 'bench-request.json'), 'utf8'));
const warden = new Warden({ piiTokenSalt: 'bench-salt' });
const sample = warden.precheck(request);
if (sample.decision !== 'transform') throw new Error(`unexpected ${JSON.stringify(sample)}`);

for (let i = 0; i < 2_000; i++) warden.precheck(request);
const iterations = 20_000;
const samples = new Float64Array(iterations);
const start = performance.now();
for (let i = 0; i < iterations; i++) {
  const t = performance.now();
  warden.precheck(request);
  samples[i] = performance.now() - t;
}
const total = performance.now() - start;
samples.sort();
const pct = (p) => +(samples[Math.min(samples.length - 1, Math.floor((samples.length * p) / 100))] * 1000).toFixed(2);
console.log(
  JSON.stringify({
    runtime: `wasm (node ${process.version})`,
    request_bytes: JSON.stringify(request).length,
    iterations,
    mean_us: +((total * 1000) / iterations).toFixed(2),
    p50_us: pct(50),
    p99_us: pct(99),
  }),
);
