// Types of the auto-initialising entry points (Node, Deno, Vercel Edge, Workers).
import type { StreamFormat, StreamRecord } from './warden_wasm.js';

export { Warden } from './warden.js';
export { WardenStream } from './warden_wasm.js';
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
  DetokenizeRequest,
  DetokenizeResponse,
  KeptReason,
  HttpResult,
  StreamFormat,
  StreamRecord,
  BudgetLedgerStore,
  DecisionEvent,
} from './warden_wasm.js';

/** Serves a Fetch API Request with Warden's HTTP router (every route of the HTTP API). */
export declare function handleRequest(warden: import('./warden_wasm.js').Warden, request: Request): Promise<Response>;

/** Options of `governStream` / `governTransform`: the query of `POST /api/v1/postcheck/stream`. */
export interface GovernOptions {
  /** The tool whose answer this is (its `tool_access` rule applies). */
  tool: string;
  scope?: string;
  /** Default "text". */
  format?: StreamFormat;
  /** ndjson: JSON pointer of the text in each line (default: the first of the documented fields present). */
  field?: string;
}

/** Chunks a governed stream reads. */
export type StreamChunk = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/** The governed bytes, with the metadata record once the stream ended (deny included). */
export interface GovernedStream extends ReadableStream<Uint8Array> {
  /** Resolves to the metadata record at the end; rejects if the stream was aborted or cancelled. */
  result: Promise<StreamRecord>;
}

/** A TransformStream governing what is written to it. */
export interface GovernTransform extends TransformStream<StreamChunk, Uint8Array> {
  result: Promise<StreamRecord>;
}

declare module './warden_wasm.js' {
  interface Warden {
    /**
     * Governs a stream as `POST /api/v1/postcheck/stream` does: for ndjson, openai and
     * anthropic the same bytes (the metadata record last; after a deny nothing follows it);
     * for text the governed text itself, erroring with a WardenError (code "denied" or
     * "invalid_request", `record` set) when the stream is stopped.
     */
    governStream(readable: ReadableStream<StreamChunk>, options: GovernOptions): GovernedStream;
    /**
     * The same as a TransformStream: `response.body.pipeThrough(warden.governTransform(options))`.
     * For text a stop closes the readable after the released text; `result` tells the deny.
     */
    governTransform(options: GovernOptions): GovernTransform;
  }
}

/**
 * The bytes of `warden-names.bin`, the person detector's name tables, for the `nameTables`
 * option (needed only by a policy with `detect_extra: [person]`). Default: the copy shipped in
 * this package (read from disk in Node and Deno, fetched elsewhere); or a path / URL / Response.
 */
export declare function loadNameTables(source?: string | URL | Response): Promise<Uint8Array>;
