// Runs every vitest project and ends with the plain closing line CI reads:
// "N passed, N failed, N skipped". Exits non-zero when anything failed.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const results = ".test-results.json";
rmSync(results, { force: true });
const extra = process.argv.slice(2);
const run = spawnSync(
  "vitest",
  ["run", "--reporter=default", "--reporter=json", `--outputFile.json=${results}`, ...extra],
  { stdio: "inherit" },
);

interface JsonReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numFailedTestSuites: number;
}

let report: JsonReport | undefined;
try {
  report = JSON.parse(readFileSync(results, "utf8")) as JsonReport;
} catch {
  report = undefined;
}
if (!report) {
  console.log("0 passed, 1 failed");
  console.error("vitest produced no report");
  process.exit(run.status || 1);
}
// A suite that fails to load counts as a failure even when it has no test results.
const failed = report.numFailedTests + (report.numFailedTests === 0 ? report.numFailedTestSuites : 0);
console.log(
  `${report.numPassedTests} passed, ${failed} failed, ${report.numPendingTests + report.numTodoTests} skipped`,
);
process.exit(run.status ?? (failed > 0 ? 1 : 0));
