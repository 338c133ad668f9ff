import type { TestProject } from "vitest/node";
import { setupLocalCluster } from "./global-setup.ts";

/** The `real` project: the control plane with two real nodes (kubelet + CRI-O + runc + CRIU). */
export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return setupLocalCluster(project, "real");
}
