// What a cluster's nodes run, with versions, for reports (make demo, bench:eval, bench:checkpoint):
// the kubelet and container runtime from the Node objects' nodeInfo; on real nodes also runc and
// the criu wrapper (hack/build-node.sh), asked for their own versions.
import type * as k8s from "@kubernetes/client-node";
import { run } from "../exec.ts";
import { nodeBinaries } from "./node-binaries.ts";
import type { NodeRuntime } from "./nodes.ts";

export interface RuntimeVersions {
  runtime: NodeRuntime;
  kubelet: string;
  crio: string;
  /** Real nodes only. */
  runc?: string;
  criu?: string;
}

export async function runtimeVersions(core: k8s.CoreV1Api, runtime: NodeRuntime): Promise<RuntimeVersions> {
  const nodes = (await core.listNode()).items;
  const distinct = (f: (n: k8s.V1Node) => string | undefined) =>
    [...new Set(nodes.map(f).filter((x): x is string => !!x))].join("/") || "?";
  const kubelet = distinct((n) => n.status?.nodeInfo?.kubeletVersion);
  const crio = distinct((n) => n.status?.nodeInfo?.containerRuntimeVersion?.replace(/^cri-o:\/\//, ""));
  if (runtime === "simulated") return { runtime, kubelet, crio };
  const first = (out: string, re: RegExp) => re.exec(out)?.[1] ?? "?";
  const runc = first(await run("runc", ["--version"]).catch(() => ""), /runc version ([^\s+]+)/);
  const criu = first(await run((await nodeBinaries()).criu, ["--version"]).catch(() => ""), /Version: (\S+)/);
  return { runtime, kubelet, crio, runc, criu };
}

/** "real (kubelet v1.36.3, CRI-O 1.36.1, runc 1.1.5, CRIU 4.2.1)" or the simulated equivalent. */
export function describeRuntime(v: RuntimeVersions): string {
  if (v.runtime === "simulated") {
    return `simulated (sim/ kubelet ${v.kubelet}, CRI-O ${v.crio} as simulated; no CRIU: the cooperative checkpoint contract)`;
  }
  return `real (kubelet ${v.kubelet}, CRI-O ${v.crio}, runc ${v.runc ?? "?"}, CRIU ${v.criu ?? "?"})`;
}
