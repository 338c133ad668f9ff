// The reference consumer's application state: what a real service would keep in memory.
// count / lastSeq / checksum are the "business" state; `seen` and `twice` make the accounting
// exact (which sequence numbers were applied, and which more than once).

export interface WorkloadState {
  count: number;
  lastSeq: number;
  /** Order-independent checksum of every applied sequence number (sum of hashes mod 2^32). */
  checksum: number;
  /** Applied sequence numbers as inclusive ranges, ascending. */
  seen: [number, number][];
  /** Sequence numbers applied more than once (one entry per extra application). */
  twice: number[];
}

export function seqHash(seq: number): number {
  let x = seq >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  x = Math.imul(x ^ (x >>> 16), 0x45d9f3b);
  return (x ^ (x >>> 16)) >>> 0;
}

export const checksumOf = (seqs: Iterable<number>): number => {
  let sum = 0;
  for (const s of seqs) sum = (sum + seqHash(s)) >>> 0;
  return sum;
};

export class AppState {
  count = 0;
  lastSeq = 0;
  checksum = 0;
  readonly #seen = new Set<number>();
  readonly #twice: number[] = [];

  apply(seq: number): void {
    this.count++;
    this.lastSeq = seq;
    this.checksum = (this.checksum + seqHash(seq)) >>> 0;
    if (this.#seen.has(seq)) this.#twice.push(seq);
    else this.#seen.add(seq);
  }

  toJSON(): WorkloadState {
    return {
      count: this.count,
      lastSeq: this.lastSeq,
      checksum: this.checksum,
      seen: toRanges(this.#seen),
      twice: [...this.#twice],
    };
  }

  static from(state: WorkloadState): AppState {
    const s = new AppState();
    s.count = state.count;
    s.lastSeq = state.lastSeq;
    s.checksum = state.checksum;
    for (const [a, b] of state.seen) for (let i = a; i <= b; i++) s.#seen.add(i);
    s.#twice.push(...state.twice);
    return s;
  }
}

export function toRanges(values: Iterable<number>): [number, number][] {
  const sorted = [...values].sort((a, b) => a - b);
  const ranges: [number, number][] = [];
  for (const v of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && v === last[1] + 1) last[1] = v;
    else if (!last || v > last[1]) ranges.push([v, v]);
  }
  return ranges;
}

export function fromRanges(ranges: [number, number][]): number[] {
  const out: number[] = [];
  for (const [a, b] of ranges) for (let i = a; i <= b; i++) out.push(i);
  return out;
}
