// One test file's setup: ms2m deployed, the controller binary running, a fresh namespace.
import { ControllerProcess } from "./controller-process.ts";
import { deployMs2m } from "./deploy.ts";
import { type ControllerTestEnv, workDir } from "./env.ts";
import { createNamespace } from "./workload.ts";

/** One file's setup: ms2m deployed, the controller binary running, a fresh namespace. */
export async function setupFile(
  env: ControllerTestEnv,
  prefix: string,
  controllerEnv: Record<string, string> = {},
) {
  const work = await workDir(prefix);
  const { caFile } = await deployMs2m(env, work);
  const controller = new ControllerProcess(env, work, caFile, controllerEnv);
  await controller.start();
  const ns = await createNamespace(env, prefix);
  return {
    work,
    controller,
    ns,
    async teardown() {
      await controller.stop();
      await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    },
  };
}
