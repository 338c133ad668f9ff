import { describe, expect, it } from "vitest";
import { fieldValue } from "../../../sim/volumes.ts";

describe("environment and Downward API", () => {
  it("resolves field paths of the new pod", () => {
    const ctx = {
      nodeIp: "198.51.100.2",
      pod: {
        metadata: { name: "p", namespace: "ns", uid: "u", labels: { app: "a", tier: "b" } },
        spec: { nodeName: "node-a", containers: [] },
      },
    };
    expect(fieldValue(ctx, "metadata.name")).toBe("p");
    expect(fieldValue(ctx, "metadata.labels['app']")).toBe("a");
    expect(fieldValue(ctx, "metadata.labels")).toBe('app="a"\ntier="b"');
    expect(fieldValue(ctx, "spec.nodeName")).toBe("node-a");
    expect(fieldValue(ctx, "status.podIP")).toBe("198.51.100.2");
    expect(() => fieldValue(ctx, "spec.nope")).toThrow(/unsupported/);
  });
});
