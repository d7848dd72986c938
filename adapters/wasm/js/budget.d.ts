import type { BudgetLedgerStore } from './warden_wasm.js';

/** Ledgers in a Map of this isolate: the reference `BudgetLedgerStore` (tests, single isolate). */
export declare class MemoryLedgerStore implements BudgetLedgerStore {
  get(user: string): Promise<{ value: string | null; version: number | null }>;
  compareAndSet(user: string, version: unknown, value: string): Promise<boolean>;
}
