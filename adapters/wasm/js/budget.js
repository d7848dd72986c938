// The reference budget store of the `budgetStore` option: ledgers in a Map of this isolate,
// versioned by a counter. Use it to test, or as the model of a shared store (docs/edge.md
// shows the same two methods on Upstash Redis with a Lua compare-and-set).
export class MemoryLedgerStore {
  #ledgers = new Map();

  async get(user) {
    const entry = this.#ledgers.get(user);
    return entry === undefined ? { value: null, version: null } : { value: entry.value, version: entry.version };
  }

  async compareAndSet(user, version, value) {
    const current = this.#ledgers.get(user)?.version ?? null;
    if (current !== version) return false;
    this.#ledgers.set(user, { value, version: (current ?? 0) + 1 });
    return true;
  }
}
