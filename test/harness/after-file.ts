import { afterAll, type RunnerTask } from "vitest";

const failed = (task: RunnerTask): boolean =>
  task.result?.state === "fail" || ("tasks" in task && task.tasks.some(failed));

/**
 * afterAll for the whole test file, told whether anything in it failed (a test or a hook): a
 * failed file keeps its work folder for debugging (removeTempDir's `keep`).
 */
export function afterFile(fn: (failed: boolean) => unknown, timeout?: number): void {
  // vitest passes the file as the second argument, after a destructured (here empty) context.
  // eslint-disable-next-line no-empty-pattern
  afterAll(({}, file) => fn(failed(file)), timeout);
}
