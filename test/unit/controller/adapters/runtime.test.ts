import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../src/common/errors.ts";
import { AgentRuntimeProbe } from "../../../../src/controller/adapters/runtime.ts";
import type { RuntimeReport } from "../../../../src/transfer/types.ts";

const DROP_IN = "/etc/crio/crio.conf.d/10-crio.conf";

describe("AgentRuntimeProbe", () => {
  const report: RuntimeReport = {
    runtime: "cri-o",
    checkpoint: true,
    restore: true,
    source: DROP_IN,
    detail: "",
  };
  function probe(found: { url?: string; pods: number }, answer: () => Promise<RuntimeReport>) {
    const calls = { find: 0, runtime: 0 };
    let t = 0;
    const p = new AgentRuntimeProbe(
      {
        runtime: () => {
          calls.runtime++;
          return answer();
        },
      },
      {
        find: async () => {
          calls.find++;
          return found;
        },
      },
      { cacheMs: 1000, now: () => t },
    );
    return { p, calls, advance: (ms: number) => (t += ms) };
  }
  const opts = { runtime: "cri-o" as const, agentRequired: false };

  it("asks the node's agent and reuses the report for a short while", async () => {
    const { p, calls, advance } = probe({ url: "https://10.0.0.1:9443", pods: 1 }, async () => report);
    expect(await p.probe("node-b", opts)).toEqual({ state: "reported", report });
    await p.probe("node-b", opts);
    expect(calls).toEqual({ find: 1, runtime: 1 });
    advance(1000);
    await p.probe("node-b", opts);
    expect(calls.runtime).toBe(2);
  });

  it("skips where no agent runs or an optional one is not Ready; waits for a required one", async () => {
    expect(await probe({ pods: 0 }, async () => report).p.probe("n", opts)).toEqual({
      state: "skipped",
      why: "no ms2m-agent runs on node n",
      expected: true,
    });
    expect(await probe({ pods: 1 }, async () => report).p.probe("n", opts)).toEqual({
      state: "skipped",
      why: "the ms2m-agent on node n is not Ready",
      expected: true,
    });
    await expect(
      probe({ pods: 1 }, async () => report).p.probe("n", { ...opts, agentRequired: true }),
    ).rejects.toMatchObject({ reason: "ServiceUnavailable", retriable: true });
  });

  it("an older agent (404) or a missing grant (403) skip; an unreachable agent is retried", async () => {
    const url = { url: "https://10.0.0.1:9443", pods: 1 };
    const old = await probe(url, () =>
      Promise.reject(new Ms2mError("NotFound", "no route /v1/runtime")),
    ).p.probe("n", opts);
    expect(old).toMatchObject({
      state: "skipped",
      why: expect.stringContaining("older version"),
      expected: false,
    });
    const denied = await probe(url, () =>
      Promise.reject(new Ms2mError("Forbidden", "may not get agents/runtime")),
    ).p.probe("n", opts);
    expect(denied).toMatchObject({
      state: "skipped",
      why: expect.stringContaining("grant get on agents/runtime"),
    });
    const { p, calls } = probe(url, () =>
      Promise.reject(new Ms2mError("ServiceUnavailable", "connection refused")),
    );
    await expect(p.probe("n", opts)).rejects.toMatchObject({ reason: "ServiceUnavailable" });
    await expect(p.probe("n", opts)).rejects.toMatchObject({ reason: "ServiceUnavailable" });
    expect(calls.runtime).toBe(2); // a failure is not cached
  });
});
