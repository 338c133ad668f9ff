// Every project's first global setup: the tests and their tooling remove the ms2m-* folders they
// make in os.tmpdir() (tooling/temp-dir.ts). A run that leaves new ones behind fails at its end
// with their names (a throwing global teardown makes `vitest run` exit 1), except folders kept
// for debugging a failed test (KEPT_MARKER), which are listed.
//
// On a shared machine another vitest run may be making folders at the same time; they cannot be
// told from this run's, so when one is running the leftovers are only reported.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEPT_MARKER } from "../../tooling/temp-dir.ts";

/** What mkdtemp makes from an ms2m-<prefix>- template (fixed names such as ms2m-slots are not). */
const TEMP_NAME = /^ms2m-.+-[A-Za-z0-9]{6}$/;

const tempFolders = () => readdirSync(tmpdir()).filter((name) => TEMP_NAME.test(name));

/** The other vitest runs on this machine (their main processes), as "pid command line". */
function otherVitestRuns(): string[] {
  const runs: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone
    }
    if (/(^|\/)vitest(\.mjs)?$/.test(argv[1] ?? "")) runs.push(`${pid} ${argv.join(" ").trim()}`);
  }
  return runs;
}

// Projects run together (unit + component) share one check: the first setup takes the baseline,
// the last teardown compares.
const shared = globalThis as { ms2mTempCheck?: { projects: number; before: Set<string>; others: string[] } };

export default function setup(): () => void {
  const check = (shared.ms2mTempCheck ??= { projects: 0, before: new Set(tempFolders()), others: [] });
  check.projects++;
  check.others.push(...otherVitestRuns());
  return () => {
    if (--check.projects > 0) return;
    delete shared.ms2mTempCheck;
    const fresh = tempFolders().filter((name) => !check.before.has(name));
    const kept = fresh.filter((name) => existsSync(join(tmpdir(), name, KEPT_MARKER)));
    const left = fresh.filter((name) => !kept.includes(name)).sort();
    if (kept.length) console.log(`[harness] kept for debugging a failed test: ${kept.join(", ")}`);
    if (!left.length) return;
    const others = [...new Set([...check.others, ...otherVitestRuns()])];
    const message =
      `${left.length} temp folder(s) left in ${tmpdir()} by the tests (remove them in ` +
      `afterEach/afterAll/finally, see tooling/temp-dir.ts):\n  ${left.join("\n  ")}`;
    if (!others.length) throw new Error(message);
    console.warn(
      `[harness] ${message}\n` +
        `[harness] not failing: other vitest runs were active and may have made them:\n  ${others.join("\n  ")}`,
    );
  };
}
