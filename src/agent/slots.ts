// The concurrency limit on transfers (AGENT_MAX_CONCURRENT_TRANSFERS): a transfer holds a slot
// while it runs; above the limit it is refused with 429. A draining agent waits for the slots to
// empty.
import { Ms2mError } from "../common/errors.ts";

export interface Slot {
  released: boolean;
}

export class Slots {
  private readonly taken = new Set<Slot>();
  private idleWaiters: (() => void)[] = [];
  private readonly limit: () => number;
  private readonly onChange: (inUse: number) => void;

  /** `limit` is read per acquire; `onChange` sees the count after every change (the gauge). */
  constructor(limit: () => number, onChange: (inUse: number) => void = () => undefined) {
    this.limit = limit;
    this.onChange = onChange;
  }

  get size(): number {
    return this.taken.size;
  }

  /** A slot, or TooManyRequests at the limit. */
  acquire(): Slot {
    if (this.taken.size >= this.limit()) {
      throw new Ms2mError("TooManyRequests", `agent busy: ${this.taken.size} transfers in flight`);
    }
    const slot: Slot = { released: false };
    this.taken.add(slot);
    this.onChange(this.taken.size);
    return slot;
  }

  /** Idempotent. */
  release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    this.taken.delete(slot);
    this.onChange(this.taken.size);
    if (this.taken.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when no slot is taken, or after `timeoutMs`, whichever comes first. */
  async idle(timeoutMs: number): Promise<void> {
    if (this.taken.size === 0) return;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
  }
}
