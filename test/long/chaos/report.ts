// Global setup of the `long` project: clears the chaos results file before the run and prints
// every case's row as one table at the end (each test file appends its rows, see scenario.ts).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const RESULTS_DIR = join(tmpdir(), "ms2m-chaos");
export const RESULTS_FILE = join(RESULTS_DIR, "results.jsonl");
export const TABLE_FILE = join(RESULTS_DIR, "table.md");

export interface ChaosRow {
  group: string;
  strategy: string;
  fault: string;
  /** Phase the migration was in when the fault landed. */
  landedIn: string;
  outcome: string;
  published: number;
  lost: number;
  twice: number;
  leftovers: string[];
  seconds: number;
  error?: string;
}

export function renderTable(rows: ChaosRow[]): string {
  const head = "| # | strategy | fault | landed in | outcome | published | lost | twice | leftovers | s |";
  const sep = "|---|---|---|---|---|---|---|---|---|---|";
  const lines = rows.map(
    (r, i) =>
      `| ${i + 1} | ${r.strategy} | ${r.fault} | ${r.landedIn} | ${r.outcome}${r.error ? ` (error: ${r.error.replaceAll("|", "/").slice(0, 120)})` : ""} | ${r.published} | ${r.lost} | ${r.twice} | ${r.leftovers.length ? r.leftovers.join(", ") : "none"} | ${r.seconds.toFixed(1)} |`,
  );
  return [head, sep, ...lines].join("\n");
}

export default function setup(): () => void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  rmSync(RESULTS_FILE, { force: true });
  return () => {
    if (!existsSync(RESULTS_FILE)) return;
    const rows = readFileSync(RESULTS_FILE, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as ChaosRow);
    const table = renderTable(rows);
    const bad = rows.filter((r) => r.lost > 0 || r.twice > 0 || r.leftovers.length > 0 || r.error).length;
    writeFileSync(TABLE_FILE, `${table}\n`);
    console.log(
      `\n[chaos] ${rows.length} cases, ${bad} with loss, duplicates, leftovers or errors\n${table}`,
    );
    console.log(`[chaos] table written to ${TABLE_FILE}`);
  };
}
