// Types of the auto-initialising entry points (Node, Deno, Vercel Edge, Workers).
export { Warden } from './warden.js';
export type { TextVerdict } from './warden.js';
export { MemoryLedgerStore } from './budget.js';
export type {
  WardenOptions,
  WardenError,
  Decision,
  PolicyId,
  CheckRequest,
  CheckResponse,
  RedactMatch,
  RedactResponse,
  EvaluateRequest,
  EvaluateResponse,
  HttpResult,
  BudgetLedgerStore,
  DecisionEvent,
} from './warden_wasm.js';

/** Serves a Fetch API Request with Warden's HTTP router (every route of the HTTP API). */
export declare function handleRequest(warden: import('./warden_wasm.js').Warden, request: Request): Promise<Response>;
