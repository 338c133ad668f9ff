// The kubectl plugin as users run it: the real kubectl finds `kubectl-ms2m` on the PATH and runs
// it for `kubectl ms2m ...`. The executable is a shim that runs the plugin's sources or a given
// file (the bundle, an npm-installed bin), or the given executable itself (a krew archive's).
import { execFile } from "node:child_process";
import { chmod, copyFile, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { controlPlaneBinaries } from "./cluster/binaries.ts";
import { tempDir } from "./temp-dir.ts";

export const PLUGIN_ENTRY = fileURLToPath(new URL("../cmd/kubectl-ms2m/main.ts", import.meta.url));

export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A new temp folder (the caller removes it with removeTempDir) holding an executable
 * `kubectl-ms2m`: a shim running `entry` with this Node.js, or, with `copy`, `entry` itself (an
 * executable that finds `node` on the PATH through its `#!/usr/bin/env node`).
 */
export async function pluginDir(entry = PLUGIN_ENTRY, options: { copy?: boolean } = {}): Promise<string> {
  const dir = tempDir("plugin");
  const bin = join(dir, "kubectl-ms2m");
  if (options.copy) await copyFile(entry, bin);
  else await writeFile(bin, `#!/bin/sh\nexec "${process.execPath}" "${entry}" "$@"\n`);
  await chmod(bin, 0o755);
  return dir;
}

/**
 * `kubectl ms2m ARGS` through the real kubectl's plugin lookup, with the given kubeconfig and a
 * PATH that starts with `binDir` (a folder with `kubectl-ms2m`), then this Node.js's folder.
 */
export async function kubectlPlugin(
  binDir: string,
  kubeconfig: string,
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<PluginResult> {
  const { kubeBin } = await controlPlaneBinaries();
  const path = [binDir, join(process.execPath, ".."), process.env.PATH ?? ""].join(delimiter);
  return new Promise((resolve) => {
    execFile(
      join(kubeBin, "kubectl"),
      ["ms2m", ...args],
      {
        env: { ...process.env, PATH: path, KUBECONFIG: kubeconfig, NO_COLOR: "1", ...options.env },
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
