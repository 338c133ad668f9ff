// Accounting check: the producer's log (confirmed sequence numbers) against the consumer's
// final state. Zero lost and zero applied twice is the bar.
//   node workload/accounting.ts <producer-log> <state.json>
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { checksumOf, fromRanges, type WorkloadState } from "./state.ts";

export interface AccountingReport {
  published: number;
  processed: number;
  lost: number[];
  appliedTwice: number[];
  /** Applied but never confirmed as published (a publish whose confirm was lost, or a foreign message). */
  unexpected: number[];
  checksumOk: boolean;
  ok: boolean;
}

export function account(published: Iterable<number>, state: WorkloadState): AccountingReport {
  const pub = new Set(published);
  const applied = new Set(fromRanges(state.seen));
  const lost = [...pub].filter((s) => !applied.has(s)).sort((a, b) => a - b);
  const unexpected = [...applied].filter((s) => !pub.has(s)).sort((a, b) => a - b);
  const checksumOk =
    checksumOf([...applied, ...state.twice]) === state.checksum &&
    state.count === applied.size + state.twice.length;
  return {
    published: pub.size,
    processed: state.count,
    lost,
    appliedTwice: [...state.twice].sort((a, b) => a - b),
    unexpected,
    checksumOk,
    ok: lost.length === 0 && state.twice.length === 0 && checksumOk,
  };
}

/** Producer log: one confirmed sequence number per line. */
export const parseProducerLog = (text: string): number[] =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map(Number);

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [logPath, statePath] = process.argv.slice(2);
  if (!logPath || !statePath) {
    console.error("usage: node workload/accounting.ts <producer-log> <state.json>");
    process.exit(2);
  }
  const state = JSON.parse(readFileSync(statePath, "utf8")) as WorkloadState | { app: WorkloadState };
  const report = account(parseProducerLog(readFileSync(logPath, "utf8")), "app" in state ? state.app : state);
  process.stdout.write(
    `${JSON.stringify({ ...report, lost: report.lost.length, appliedTwice: report.appliedTwice.length, lostSeqs: report.lost.slice(0, 50), twiceSeqs: report.appliedTwice.slice(0, 50) })}\n`,
  );
  process.exit(report.ok ? 0 : 1);
}
