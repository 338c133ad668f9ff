// The kubectl plugin as users run it: the real kubectl finds `kubectl-ms2m` on the PATH and runs
// it for `kubectl ms2m ...`. Here the executable is a shim that runs the plugin's sources (or a
// given file: the bundle, an npm-installed bin).
import { execFile } from "node:child_process";
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { controlPlaneBinaries } from "./cluster/binaries.ts";

export const PLUGIN_ENTRY = fileURLToPath(new URL("../cmd/kubectl-ms2m/main.ts", import.meta.url));

export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A folder holding an executable `kubectl-ms2m` that runs `entry` with this Node.js. */
export async function pluginDir(entry = PLUGIN_ENTRY): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ms2m-plugin-"));
  const shim = join(dir, "kubectl-ms2m");
  await writeFile(shim, `#!/bin/sh\nexec "${process.execPath}" "${entry}" "$@"\n`);
  await chmod(shim, 0o755);
  return dir;
}

/**
 * `kubectl ms2m ARGS` through the real kubectl's plugin lookup, with the given kubeconfig and a
 * PATH that starts with `binDir` (a folder with `kubectl-ms2m`).
 */
export async function kubectlPlugin(
  binDir: string,
  kubeconfig: string,
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<PluginResult> {
  const { kubeBin } = await controlPlaneBinaries();
  return new Promise((resolve) => {
    execFile(
      join(kubeBin, "kubectl"),
      ["ms2m", ...args],
      {
        env: {
          ...process.env,
          PATH: `${binDir}${delimiter}${process.env.PATH ?? ""}`,
          KUBECONFIG: kubeconfig,
          NO_COLOR: "1",
          ...options.env,
        },
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
