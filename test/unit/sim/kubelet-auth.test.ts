import { describe, expect, it } from "vitest";
import { requestAttributes } from "../../../sim/kubelet-auth.ts";

describe("kubelet authorization attributes", () => {
  it("maps paths to nodes subresources as the kubelet does", () => {
    expect(requestAttributes("POST", "/checkpoint/ns/p/c")).toEqual({
      verb: "create",
      subresources: ["checkpoint"],
    });
    expect(requestAttributes("GET", "/pods")).toEqual({ verb: "get", subresources: ["pods", "proxy"] });
    expect(requestAttributes("GET", "/healthz")).toEqual({ verb: "get", subresources: ["healthz", "proxy"] });
    expect(requestAttributes("GET", "/containerLogs/ns/p/c")).toEqual({
      verb: "get",
      subresources: ["proxy"],
    });
    expect(requestAttributes("GET", "/stats/summary").subresources).toEqual(["stats"]);
    expect(requestAttributes("GET", "/checkpointer").subresources).toEqual(["proxy"]);
  });
});
