// Compile-time check of the package's TypeScript types (tsc -p tests/edge); never executed.
import { MemoryLedgerStore, Warden, handleRequest, loadNameTables } from 'warden-wasm';
import type { BudgetLedgerStore, CheckResponse, DecisionEvent, DetokenizeResponse, EvaluateResponse, GovernedStream, RedactResponse, StreamRecord, TextVerdict, WardenError, WardenOptions } from 'warden-wasm';

const options: WardenOptions = { policy: 'version: v1', piiTokenSalt: 's', onError: 'best_effort', apiKeys: ['k'] };
const w = new Warden(options);
const bare = new Warden();
const check: CheckResponse = w.precheck({ tool: 't', raw_text: 'x', tags: ['a'], policy_config: { version: 'v1' } });
const out: string | null = check.raw_text_out;
const decision: 'allow' | 'deny' | 'transform' | 'confirm' = bare.postcheck({ tool: 't', raw_text: 'x' }).decision;
const evaluated: EvaluateResponse = w.evaluate({ agent_id: 'a', payload: { any: ['json'] }, direction: 'egress' });
const redacted: RedactResponse = w.redact('mail a@b.io');
const restored: DetokenizeResponse = w.detokenize({ raw_text: 'encpii.k1.email_address.aa', types: ['email_address'] });
const keptWhy: string | undefined = restored.kept_tokens[0]?.reason;
const start: number = redacted.matches[0].start;
const served: Promise<Response> = handleRequest(w, new Request('http://x/api/v1/health'));
const raw = w.handle('GET', '/api/v1/health');
function onError(e: unknown): string {
  const err = e as WardenError;
  return `${err.code} ${err.status} ${err.field ?? ''}`;
}
// @ts-expect-error onError takes only the three documented values
new Warden({ onError: 'explode' });
// @ts-expect-error precheck needs raw_text
w.precheck({ tool: 't' });
const governed: GovernedStream = w.governStream(new Response('x').body!, { tool: 't', format: 'openai' });
const record: Promise<StreamRecord> = governed.result;
const piped: ReadableStream<Uint8Array> = new ReadableStream<string>().pipeThrough(w.governTransform({ tool: 't', field: '/text', format: 'ndjson' }));
const pushed: Uint8Array = w.openStream('t', undefined, 'text', undefined).push(new Uint8Array([104, 105]));
// @ts-expect-error format takes only the four documented values
w.governStream(new Response('x').body!, { tool: 't', format: 'xml' });
// Issue 15: decision-and-text calls, budgets, the decision hook and `run`.
const verdict: TextVerdict = w.precheckText('chat.send', 'hi');
const forwarded: string | null = w.postcheckText('chat.send', 'hi', 'user-1').text;
const store: BudgetLedgerStore = new MemoryLedgerStore();
const budgeted = new Warden({ budgetStore: store, budgetDefaultLimit: 5, onDecision: (e: DecisionEvent) => e.data.decision });
const memory = new Warden({ budgetStore: 'memory' });
const ran: Promise<unknown> = budgeted.run('precheck', { tool: 't', raw_text: 'x', user_id: 'u' });
// @ts-expect-error budgetStore is "memory" or a store object
new Warden({ budgetStore: 'redis' });
export { out, decision, evaluated, start, served, raw, onError, record, piped, pushed, restored, keptWhy, verdict, forwarded, memory, ran };
// Issue 14: the name tables as a separately loaded asset.
const tables: Promise<Uint8Array> = loadNameTables();
const fromUrl: Promise<Uint8Array> = loadNameTables(new URL('https://example.invalid/warden-names.bin'));
const withNames = new Warden({ policy: { version: 'v1', detect_extra: ['person'] }, nameTables: new Uint8Array(0) });
const withBuffer = new Warden({ nameTables: new ArrayBuffer(0) });
// @ts-expect-error nameTables are bytes, not a path
new Warden({ nameTables: 'warden-names.bin' });
