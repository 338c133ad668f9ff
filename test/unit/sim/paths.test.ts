import { describe, expect, it } from "vitest";
import { NodePaths } from "../../../sim/paths.ts";

describe("node folders", () => {
  it("keeps node paths inside the node's root, whatever the input", () => {
    const paths = new NodePaths("/tmp/n");
    expect(paths.host("/var/lib/kubelet/checkpoints")).toBe("/tmp/n/root/var/lib/kubelet/checkpoints");
    expect(paths.host("/../../etc/passwd")).toBe("/tmp/n/root/etc/passwd");
    expect(paths.checkpoints).toBe("/tmp/n/root/var/lib/kubelet/checkpoints");
  });
});
