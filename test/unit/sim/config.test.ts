import { describe, expect, it } from "vitest";
import { nodeConfigSchema } from "../../../sim/config.ts";

describe("node folders", () => {
  it("fills config defaults", () => {
    const cfg = nodeConfigSchema.parse({
      nodeName: "node-a",
      nodeIp: "198.51.100.2",
      dir: "/tmp/n",
      apiServer: "https://198.51.100.1:6443",
      apiServerHost: "198.51.100.1",
      apiServerPort: 6443,
      caFile: "ca",
      clientCert: "c",
      clientKey: "k",
      servingCert: "s",
      servingKey: "sk",
    });
    expect(cfg.kubeletPort).toBe(10250);
    expect(cfg.latencies).toEqual({
      imagePullMs: 0,
      containerStartMs: 0,
      readinessMs: 0,
      restoreMs: 0,
      checkpointMs: 0,
    });
    expect(() => nodeConfigSchema.parse({ ...cfg, nodeName: "Bad_Name" })).toThrow();
  });
});
