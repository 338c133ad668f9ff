import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../src/common/errors.ts";
import {
  AgentCheckpointer,
  AgentTransfer,
  splitKey,
  type AgentLocator,
} from "../../../../src/controller/adapters/agent.ts";
import type { CheckpointRequest } from "../../../../src/controller/ports.ts";
import type { AgentClient, CheckpointRecord, ReleaseResponse } from "../../../../src/transfer/index.ts";

const UID = "6f0c1d2e-aaaa-bbbb-cccc-0123456789ab";
const req: CheckpointRequest = {
  node: "node-a",
  namespace: "default",
  pod: "web-0",
  container: "app",
  key: `${UID}/app`,
  timeoutSeconds: 30,
};

function fakes(
  opts: {
    record?: CheckpointRecord | Error;
    release?: ReleaseResponse | Error | ((url: string) => ReleaseResponse);
    down?: string[];
  } = {},
) {
  const calls: unknown[][] = [];
  const client = {
    async checkpoint(url: string, body: unknown) {
      calls.push(["checkpoint", url, body]);
      return {
        archive: "checkpoint-web-0_default-app-2025-01-01T00:00:00Z.tar",
        seconds: 1,
        digest: "sha256:d",
        size: 5,
      };
    },
    async lookupCheckpoint(url: string, migration: string, container: string) {
      calls.push(["lookup", url, migration, container]);
      if (opts.record instanceof Error) throw opts.record;
      return opts.record;
    },
    async releaseCheckpoints(
      url: string,
      migration: string,
      _signal?: AbortSignal,
      options: { keepLoadedImages?: boolean } = {},
    ) {
      calls.push(["release", url, migration, options.keepLoadedImages === true]);
      if (opts.release instanceof Error) throw opts.release;
      if (typeof opts.release === "function") return opts.release(url);
      return opts.release ?? { migration, records: 1, archives: 1, registryImages: [] };
    },
  } as unknown as AgentClient;
  const locator = {
    async urlFor(node: string) {
      if (opts.down?.includes(node))
        throw new Ms2mError("ServiceUnavailable", `no ready ms2m-agent on node ${node}`);
      return `https://${node}:9443`;
    },
  } as unknown as AgentLocator;
  return { client, locator, calls };
}

const done: CheckpointRecord = {
  migration: UID,
  namespace: "default",
  pod: "web-0",
  container: "app",
  state: "Done",
  archive: "checkpoint-web-0_default-app-2025-01-01T00:00:00Z.tar",
  digest: "sha256:d",
  size: 5,
  createdAt: "2025-01-01T00:00:00Z",
};

describe("AgentCheckpointer", () => {
  it("splits the key", () => {
    expect(splitKey(`${UID}/app`)).toEqual({ migration: UID, container: "app" });
    expect(() => splitKey("nokey")).toThrow();
  });

  it("checkpoints with the migration key and returns digest and size", async () => {
    const f = fakes();
    const res = await new AgentCheckpointer(f.client, f.locator).checkpoint(req);
    expect(f.calls[0]).toEqual([
      "checkpoint",
      "https://node-a:9443",
      { migration: UID, namespace: "default", pod: "web-0", container: "app", timeoutSeconds: 30 },
    ]);
    expect(res).toEqual({ path: done.archive, digest: "sha256:d", bytes: 5 });
  });

  it("lookup: done from the agent's record", async () => {
    const f = fakes({ record: done });
    expect(await new AgentCheckpointer(f.client, f.locator).lookup(req)).toEqual({
      state: "done",
      result: { path: done.archive, digest: "sha256:d", bytes: 5 },
    });
    expect(f.calls[0]).toEqual(["lookup", "https://node-a:9443", UID, "app"]);
  });

  it("lookup: absent when the agent has no record", async () => {
    const f = fakes();
    expect(await new AgentCheckpointer(f.client, f.locator).lookup(req)).toEqual({ state: "absent" });
  });

  it("lookup: a Pending record is a retriable error, never 'unknown'", async () => {
    const f = fakes({ record: { ...done, state: "Pending" } });
    await expect(new AgentCheckpointer(f.client, f.locator).lookup(req)).rejects.toMatchObject({
      reason: "Conflict",
      retriable: true,
    });
  });

  it("lookup: an unreachable agent is retriable (the phase retries until its deadline)", async () => {
    const f = fakes({ down: ["node-a"] });
    await expect(new AgentCheckpointer(f.client, f.locator).lookup(req)).rejects.toMatchObject({
      reason: "ServiceUnavailable",
      retriable: true,
    });
    const g = fakes({ record: new Ms2mError("Timeout", "agent unreachable") });
    await expect(new AgentCheckpointer(g.client, g.locator).lookup(req)).rejects.toMatchObject({
      retriable: true,
    });
  });

  it("lookup: a record of another pod is a non-retriable conflict", async () => {
    const f = fakes({ record: { ...done, pod: "web-1" } });
    await expect(new AgentCheckpointer(f.client, f.locator).lookup(req)).rejects.toMatchObject({
      reason: "Conflict",
      retriable: false,
    });
  });
});

describe("AgentTransfer.cleanup", () => {
  const art = (container: string, sourceNode = "node-a") => ({
    mode: "Registry" as const,
    sourceNode,
    targetNode: "node-b",
    key: `${UID}/${container}`,
  });

  it("releases the migration once per source and target agent and reports refused registry deletes as warnings", async () => {
    const f = fakes({
      release: {
        migration: UID,
        records: 2,
        archives: 2,
        registryImages: [
          { image: "r/x:a", deleted: true },
          { image: "r/x:b", deleted: false, message: "HTTP 405" },
        ],
      },
    });
    const report = await new AgentTransfer(f.client, f.locator).cleanup([
      art("a"),
      art("b"),
      { mode: "Direct", sourceNode: "node-a" },
    ]);
    expect(f.calls).toEqual([
      ["release", "https://node-a:9443", UID, false],
      ["release", "https://node-b:9443", UID, false],
    ]);
    expect(report.warnings).toEqual([
      "registry image r/x:b not deleted: HTTP 405",
      "registry image r/x:b not deleted: HTTP 405",
    ]);
  });

  it("an archive window (lost node-proxy answer) is a warning: only a cleanup Job could look for it", async () => {
    const f = fakes({ release: { migration: UID, records: 0, archives: 0, registryImages: [] } });
    const window = {
      from: "2026-01-01T00:00:00.000Z",
      to: "2026-01-01T00:00:25.000Z",
      settleUntil: "2026-01-01T00:02:25.000Z",
    };
    const report = await new AgentTransfer(f.client, f.locator).cleanup([
      { ...art("app"), namespace: "shop", pod: "web-0", container: "app", archiveWindow: window },
    ]);
    expect(report.warnings).toEqual([
      "the archive a lost node-proxy checkpoint of shop/web-0 container app may have left on node-a " +
        "(kubelet time 2026-01-01T00:00:00.000Z to 2026-01-01T00:00:25.000Z) is not looked for: " +
        "MS2M_TRANSFER_RUNNER=agent starts no cleanup Job; remove it from /var/lib/kubelet/checkpoints on the node",
    ]);
    // The agents still release what they recorded.
    expect(f.calls.map((c) => c[1])).toEqual(["https://node-a:9443", "https://node-b:9443"]);
  });

  it("a completed migration keeps the images its pod runs from on the target; rollback removes them", async () => {
    const f = fakes({
      release: (url) => ({
        migration: UID,
        records: 0,
        archives: 0,
        registryImages: [],
        loadedImages: url.includes("node-b")
          ? [{ image: "localhost/x:a", deleted: false, message: "in use" }]
          : [],
      }),
    });
    const t = new AgentTransfer(f.client, f.locator);
    expect((await t.cleanup([{ ...art("a"), keepTargetImage: true }])).warnings).toEqual([]);
    expect(f.calls).toEqual([
      ["release", "https://node-a:9443", UID, false],
      ["release", "https://node-b:9443", UID, true],
    ]);
    expect((await t.cleanup([art("a")])).warnings).toEqual([
      "image localhost/x:a on node-b not deleted: in use",
    ]);
  });

  it("an unreachable agent is an error (reported by the phase), the others are still released", async () => {
    const f = fakes({ down: ["node-a"] });
    await expect(
      new AgentTransfer(f.client, f.locator).cleanup([art("a"), art("b", "node-c")]),
    ).rejects.toMatchObject({
      reason: "ServiceUnavailable",
    });
    expect(f.calls).toEqual([
      ["release", "https://node-b:9443", UID, false],
      ["release", "https://node-c:9443", UID, false],
    ]);
  });
});
