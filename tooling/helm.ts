// Helm, built from its Go module by hack/build-helm.sh into the cache (a no-op when warm), and a
// runner that keeps Helm's own log lines about the chart's links into config/ out of the output.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { run } from "./exec.ts";

let cached: Promise<string> | undefined;

/** The helm binary (built first on a cold cache). */
export function helmBinary(): Promise<string> {
  cached ??= (async () => {
    const script = fileURLToPath(new URL("../hack/build-helm.sh", import.meta.url));
    const out = await run("bash", [script]);
    const dir = /^HELM_BIN=(.*)$/m.exec(out)?.[1];
    if (!dir) throw new Error("hack/build-helm.sh did not print HELM_BIN");
    return `${dir}/helm`;
  })();
  return cached;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The chart in this repository. */
export const CHART_DIR = fileURLToPath(new URL("../charts/ms2m", import.meta.url));

/** Runs helm (with KUBECONFIG when given); never throws on a non-zero exit. */
export async function helm(args: string[], options: { kubeconfig?: string } = {}): Promise<HelmResult> {
  const bin = await helmBinary();
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      {
        env: { ...process.env, ...(options.kubeconfig ? { KUBECONFIG: options.kubeconfig } : {}) },
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        // The chart reads config/ and crd/ through links (one source of truth); Helm says so each time.
        const quiet = stderr
          .split("\n")
          .filter((l) => !l.includes("found symbolic link in path"))
          .join("\n");
        resolve({ code, stdout, stderr: quiet });
      },
    );
  });
}

/** helm, failing with its stderr on a non-zero exit; returns stdout. */
export async function helmOk(args: string[], options: { kubeconfig?: string } = {}): Promise<string> {
  const res = await helm(args, options);
  if (res.code !== 0) throw new Error(`helm ${args.join(" ")} failed (exit ${res.code}): ${res.stderr}`);
  return res.stdout;
}
