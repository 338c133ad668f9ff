// Remembers which messages the application state already contains, so a redelivery, a replay
// of messages processed before the checkpoint, or the overlap between the replay queue and the
// primary queue after the switch is skipped instead of applied twice.
//
// Bounded: the oldest keys are forgotten first. The window must be larger than the overlap a
// migration can produce (messages published between replay-queue setup and cutover); the
// default keeps 200 msg/s for over eight minutes.

export const DEFAULT_DEDUP_CAPACITY = 100_000;

export class DedupWindow {
  readonly capacity: number;
  readonly #keys = new Set<string>();

  constructor(capacity: number = DEFAULT_DEDUP_CAPACITY, initial: Iterable<string> = []) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("capacity must be a positive integer");
    this.capacity = capacity;
    for (const key of initial) this.add(key);
  }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  add(key: string): void {
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    if (this.#keys.size > this.capacity) {
      // Sets iterate in insertion order: the first key is the oldest.
      const oldest = this.#keys.values().next().value;
      if (oldest !== undefined) this.#keys.delete(oldest);
    }
  }

  get size(): number {
    return this.#keys.size;
  }

  /** Keys oldest first; feed back into the constructor to restore. */
  snapshot(): string[] {
    return [...this.#keys];
  }
}
