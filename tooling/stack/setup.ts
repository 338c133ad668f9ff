// One test file's setup: ms2m deployed, the controller binary running, a fresh namespace.
import { removeTempDir } from "../temp-dir.ts";
import { ControllerProcess } from "./controller-process.ts";
import { deployMs2m } from "./deploy.ts";
import { type ControllerTestEnv, workDir } from "./env.ts";
import { createNamespace } from "./workload.ts";

/**
 * One file's setup: ms2m deployed, the controller binary running, a fresh namespace. The work
 * folder (the controller's and the workloads' logs) is removed at teardown, or kept for
 * debugging when the file failed or the setup itself did.
 */
export async function setupFile(
  env: ControllerTestEnv,
  prefix: string,
  controllerEnv: Record<string, string> = {},
) {
  const work = await workDir(prefix);
  let started: ControllerProcess | undefined;
  try {
    const { caFile } = await deployMs2m(env, work);
    const controller = (started = new ControllerProcess(env, work, caFile, controllerEnv));
    await controller.start();
    const ns = await createNamespace(env, prefix);
    return {
      work,
      controller,
      ns,
      /** `failed`: whether the file failed (test/harness/after-file.ts); its work folder stays then. */
      async teardown(failed: boolean) {
        await controller.stop();
        await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
        await removeTempDir(work, { keep: failed });
      },
    };
  } catch (err) {
    await started?.stop().catch(() => undefined);
    await removeTempDir(work, { keep: true });
    throw err;
  }
}
