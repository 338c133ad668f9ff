// What the agent is doing right now, per migration: a repeated request joins the work already
// running for it (one kubelet checkpoint, one send per destination), and a release waits for
// everything its migration has in flight before it deletes records, archives and images.
// Memory only: after a restart the durable records (records.ts) say what was done.

type Key = string | symbol;

/** Work in flight, grouped by migration. */
export class InFlight {
  private readonly byMigration = new Map<string, Map<Key, Promise<unknown>>>();

  /**
   * Runs `fn` as the work `key` of `migration`, unless that work is running already: then its
   * promise is returned (same result, same error). A key names one kind of work, so its result
   * type is always `T`.
   */
  join<T>(migration: string, key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.byMigration.get(migration)?.get(key);
    if (running) return running as Promise<T>;
    return this.add(migration, key, fn);
  }

  /**
   * Runs `fn` as work of `migration` that is never joined (every load is its own). Without a
   * migration nothing is tracked: no release can ask for it.
   */
  track<T>(migration: string | null | undefined, fn: () => Promise<T>): Promise<T> {
    if (!migration) return fn();
    return this.add(migration, Symbol("work"), fn);
  }

  /** Whether the work `key` of `migration` is running. */
  has(migration: string, key: string): boolean {
    return this.byMigration.get(migration)?.has(key) ?? false;
  }

  /** Whether `migration` has any work running. */
  busy(migration: string): boolean {
    return this.byMigration.has(migration);
  }

  /**
   * Resolves once the work `migration` has running now is over, however it ended (never
   * rejects). Work started later is not waited for.
   */
  async settled(migration: string): Promise<void> {
    await Promise.allSettled([...(this.byMigration.get(migration)?.values() ?? [])]);
  }

  /** Migrations with work running (for tests and diagnostics). */
  get migrations(): string[] {
    return [...this.byMigration.keys()];
  }

  private add<T>(migration: string, key: Key, fn: () => Promise<T>): Promise<T> {
    let started: Promise<T>;
    try {
      started = fn();
    } catch (err) {
      started = Promise.reject(err as Error);
    }
    const work = started.finally(() => {
      const keys = this.byMigration.get(migration);
      if (keys?.get(key) !== work) return;
      keys.delete(key);
      if (keys.size === 0) this.byMigration.delete(migration);
    });
    let keys = this.byMigration.get(migration);
    if (!keys) this.byMigration.set(migration, (keys = new Map()));
    keys.set(key, work);
    return work;
  }
}

/** Runs the work of one key one after another (read-modify-write of one record file). */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` once every earlier run of `key` has settled; its outcome is `fn`'s alone. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.tails.size;
  }
}
