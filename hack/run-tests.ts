// Runs every vitest project of `make test` and ends with the plain closing line CI reads:
// "N passed, N failed, N skipped". Exits non-zero when anything failed.
//
// Three passes: unit + component in parallel, then the cluster project (simulated nodes) one file
// at a time, then the real project (real nodes) one file at a time.
// Cluster test files share one control plane and each runs its own controller; run side by
// side, two controllers would reconcile each other's migrations (vitest's per-project
// fileParallelism is not honoured when several projects run, hence the separate pass).
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

interface JsonReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites: number;
}

const extra = process.argv.slice(2);
const passes: { name: string; args: string[] }[] = [
  { name: "unit-component", args: ["--project", "unit", "--project", "component"] },
  { name: "cluster", args: ["--project", "cluster", "--no-file-parallelism"] },
  // Real nodes: checkpoint, restore, images and timings as a user's cluster does them.
  { name: "real", args: ["--project", "real", "--no-file-parallelism"] },
];

let passed = 0;
let failed = 0;
let skipped = 0;
let exitCode = 0;
for (const pass of passes) {
  const results = `.test-results.${pass.name}.json`;
  rmSync(results, { force: true });
  const run = spawnSync(
    "vitest",
    ["run", ...pass.args, "--reporter=default", "--reporter=json", `--outputFile.json=${results}`, ...extra],
    { stdio: "inherit" },
  );
  let report: JsonReport | undefined;
  try {
    report = JSON.parse(readFileSync(results, "utf8")) as JsonReport;
  } catch {
    report = undefined;
  }
  if (!report) {
    console.error(`vitest (${pass.name}) produced no report`);
    failed += 1;
    exitCode = run.status || 1;
    continue;
  }
  // A suite that fails to load counts as a failure even when it has no test results.
  passed += report.numPassedTests;
  failed += report.numFailedTests + (report.numFailedTests === 0 ? report.numFailedTestSuites : 0);
  skipped += report.numPendingTests + report.numTodoTests;
  if (run.status !== 0) exitCode = run.status ?? 1;
}
if (failed > 0 && exitCode === 0) exitCode = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(exitCode);
