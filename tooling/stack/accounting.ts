// Zero lost, zero applied twice, and the consumer's downtime: measured from the consumers' own
// state and logs.
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { sleep, waitFor } from "../exec.ts";
import { fromRanges, toRanges, type WorkloadState } from "../../workload/state.ts";
import { account, type AccountingReport } from "../../workload/accounting.ts";
import { type ControllerTestEnv } from "./env.ts";
import type { TestProducer } from "./workload.ts";
import { type Workload } from "./workload.ts";

/**
 * Stops the producer, lets the consumers catch up, stops every consumer (`stopAll`; each writes
 * its state on SIGTERM) and checks the producer's confirmed sequence numbers against the union
 * of their states (a sequence number in two states counts as applied twice).
 */
export async function finalAccounting(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  producer: TestProducer,
  stopAll: () => Promise<void>,
  onlyPod?: string,
): Promise<AccountingReport> {
  await producer.stop();
  await sleep(1_500);
  // Emptied, not recreated: real pods have the folder bind-mounted (a new folder would be unseen).
  await mkdir(w.stateDir, { recursive: true });
  for (const f of await readdir(w.stateDir)) await rm(join(w.stateDir, f), { force: true });
  const before = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items
    .length;
  await stopAll();
  await waitFor(
    `${w.name} consumers stopped`,
    async () => {
      const pods = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` });
      return pods.items.length === 0 ? true : undefined;
    },
    { timeoutMs: 30_000 },
  );
  const files = await waitFor(
    `${before} state files of ${w.name}`,
    async () => {
      const names = (await readdir(w.stateDir)).filter((f) => f.endsWith(".json"));
      if (onlyPod) return names.includes(`${onlyPod}.json`) ? [`${onlyPod}.json`] : undefined;
      return names.length >= before ? names : undefined;
    },
    { timeoutMs: 10_000 },
  );
  const states = await Promise.all(
    files.map(
      async (f) => (JSON.parse(await readFile(join(w.stateDir, f), "utf8")) as { app: WorkloadState }).app,
    ),
  );
  return account(producer.confirmed, mergeStates(states));
}

export function mergeStates(states: WorkloadState[]): WorkloadState {
  const seen = new Set<number>();
  const twice: number[] = [];
  let count = 0;
  let checksum = 0;
  let lastSeq = 0;
  for (const st of states) {
    count += st.count;
    checksum = (checksum + st.checksum) >>> 0;
    lastSeq = Math.max(lastSeq, st.lastSeq);
    twice.push(...st.twice);
    for (const seq of fromRanges(st.seen)) {
      if (seen.has(seq)) twice.push(seq);
      else seen.add(seq);
    }
  }
  return { count, checksum, lastSeq, seen: toRanges(seen), twice };
}

/** One applied message: when (epoch ms), which sequence number, in which pod. */
export interface AppliedEntry {
  at: number;
  seq: number;
  pod: string;
}

/** Every consumer's applied log (see Workload.appliedLogDir), ordered by time. */
export async function readAppliedLogs(dir: string): Promise<AppliedEntry[]> {
  const out: AppliedEntry[] = [];
  for (const f of (await readdir(dir).catch(() => [] as string[])).filter((x) => x.endsWith(".applied"))) {
    const pod = f.slice(0, -".applied".length);
    const lines = createInterface({ input: createReadStream(join(dir, f)), crlfDelay: Infinity });
    for await (const line of lines) {
      const [at, seq] = line.split(" ").map(Number);
      if (at && seq) out.push({ at, seq, pod });
    }
  }
  return out.sort((a, b) => a.at - b.at);
}

export interface Downtime {
  /** The longest time (ms) in [from, to] in which no consumer applied a message. */
  gapMs: number;
  /** Where that gap starts and ends (epoch ms). */
  gapStart: number;
  gapEnd: number;
  /** The median gap between applied messages before `from` (what "no downtime" looks like). */
  normalGapMs: number;
}

/**
 * The consumer's downtime across a migration: the longest gap in message processing between
 * `from` (the migration's start) and `to` (the producer's stop), over all pods of the workload
 * (source, target): the time during which nothing was applied although messages kept coming.
 */
export function downtime(entries: AppliedEntry[], from: number, to: number): Downtime {
  const inside = entries.filter((e) => e.at >= from && e.at <= to).map((e) => e.at);
  const before = entries.filter((e) => e.at < from).map((e) => e.at);
  const points = [before.at(-1) ?? from, ...inside];
  let best = { gapMs: 0, gapStart: from, gapEnd: from };
  for (let i = 1; i < points.length; i++) {
    const gap = points[i]! - points[i - 1]!;
    if (gap > best.gapMs) best = { gapMs: gap, gapStart: points[i - 1]!, gapEnd: points[i]! };
  }
  const last = points.at(-1)!;
  if (to - last > best.gapMs) best = { gapMs: to - last, gapStart: last, gapEnd: to };
  const gaps = before
    .slice(1)
    .map((t, i) => t - before[i]!)
    .sort((a, b) => a - b);
  return { ...best, normalGapMs: gaps[Math.floor(gaps.length / 2)] ?? 0 };
}
