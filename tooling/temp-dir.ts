// Temp folders of the tests and their tooling: os.tmpdir()/ms2m-<prefix>-XXXXXX, removed by
// whoever made them (afterEach/afterAll/finally). The tests' global setup
// (test/harness/global-setup-temp.ts) fails a run that leaves one behind, unless it was kept
// for debugging a failed test.
import { mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The file that marks a folder as kept on purpose (a failed test's logs). */
export const KEPT_MARKER = ".ms2m-kept-for-debugging";

/** A new, empty os.tmpdir()/ms2m-<prefix>-XXXXXX: the caller removes it (removeTempDir). */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ms2m-${prefix}-`));
}

/**
 * Removes a temp folder and everything in it (files of root-owned processes too); no-op without
 * one. With `keep` (the tests that used it failed) it stays for debugging, marked as kept.
 */
export async function removeTempDir(dir: string | undefined, opts: { keep?: boolean } = {}): Promise<void> {
  if (!dir) return;
  if (!opts.keep) return rm(dir, { recursive: true, force: true, maxRetries: 3 }); // a process may still be closing files
  writeFileSync(join(dir, KEPT_MARKER), "kept for debugging a failed test\n");
  console.error(`kept ${dir} for debugging`);
}
