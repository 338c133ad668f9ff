import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../../src/common/errors.ts";
import {
  RoutedTransfer,
  type JobTransfer,
} from "../../../../../src/controller/adapters/transfer-job/transfer.ts";
import type { ArtifactRef, CleanupReport, TransferPort } from "../../../../../src/controller/ports.ts";
import {
  buildCleanupJob,
  type CleanupJobInput,
} from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import { archive, cleanupSettings, uid } from "./fixtures.ts";

describe("RoutedTransfer.cleanup where the source node runs no agent", () => {
  const art = (a: Partial<ArtifactRef> = {}): ArtifactRef => ({
    mode: "Registry",
    sourceNode: "node-c",
    targetNode: "node-b",
    namespace: "shop",
    pod: "web-0",
    container: "app",
    archivePath: archive,
    image: "198.51.100.1:5000/ckpt:app-0f1e",
    key: `${uid}/app`,
    ...a,
  });
  function setup(opts: { createFails?: boolean; exists?: boolean } = {}) {
    const created: CleanupJobInput[] = [];
    const released: ArtifactRef[][] = [];
    let sendJobsDeleted = 0;
    const job = {
      cleanup: () => {
        sendJobsDeleted++;
        return Promise.resolve({ warnings: [] });
      },
      startCleanup: (input: CleanupJobInput) => {
        if (opts.createFails) return Promise.reject(new Ms2mError("Forbidden", "jobs is forbidden"));
        created.push(input);
        return Promise.resolve({
          name: buildCleanupJob(input, cleanupSettings).metadata!.name!,
          created: !opts.exists,
        });
      },
    } as unknown as JobTransfer;
    const agent: TransferPort = {
      transfer: () => Promise.reject(new Error("unused")),
      cleanup: (a: ArtifactRef[]): Promise<CleanupReport> => {
        released.push(a);
        return Promise.resolve({ warnings: [] });
      },
    };
    const locator = {
      urlFor: (node: string) =>
        node === "node-c"
          ? Promise.reject(new Ms2mError("ServiceUnavailable", "no Ready ms2m-agent"))
          : Promise.resolve(`https://${node}:9443`),
    };
    const routed = new RoutedTransfer(agent, job, locator, "auto");
    return { routed, created, released, sendJobsDeleted: () => sendJobsDeleted };
  }

  it("starts a Job on the source node for the archive and one for the registry image; no warning", async () => {
    const t = setup();
    const report = await t.routed.cleanup([
      art(),
      art({
        container: "side",
        archivePath: archive.replace("-app-", "-side-"),
        image: "198.51.100.1:5000/ckpt:side-0f1e",
        key: `${uid}/side`,
      }),
    ]);
    expect(report.warnings).toEqual([]);
    expect(t.sendJobsDeleted()).toBe(1);
    expect(t.created).toHaveLength(2);
    const [onNode, registry] = t.created;
    expect(onNode?.node).toBe("node-c");
    expect(onNode?.request.archives).toEqual([
      { container: "app", archive },
      { container: "side", archive: archive.replace("-app-", "-side-") },
    ]);
    expect(onNode?.request.registryImages).toEqual([]);
    expect(registry?.node).toBeUndefined();
    expect(registry?.request.archives).toEqual([]);
    expect(registry?.request.registryImages.map((i) => i.image)).toEqual([
      "198.51.100.1:5000/ckpt:app-0f1e",
      "198.51.100.1:5000/ckpt:side-0f1e",
    ]);
    expect(report.started).toHaveLength(2);
    expect(report.started?.[0]).toMatch(/^Job ms2m-cleanup-0f1e2d3c4b5a-node-c deletes checkpoint archive /);
    // What the Job sent into the target's agent is released there.
    expect(t.released.flat().every((a) => a.sourceNode === "node-b")).toBe(true);
  });

  it("Direct: only the archive; a Job that already exists is fine", async () => {
    const t = setup({ exists: true });
    const report = await t.routed.cleanup([art({ mode: "Direct", image: "localhost/ms2m-checkpoint/x:y" })]);
    expect(report.warnings).toEqual([]);
    expect(t.created.map((c) => c.node)).toEqual(["node-c"]);
    expect(report.started?.[0]).toContain("already deletes");
  });

  it("a Job that cannot be created leaves a warning that says what stays", async () => {
    const t = setup({ createFails: true });
    const report = await t.routed.cleanup([art()]);
    expect(report.warnings).toEqual([
      `checkpoint archive ${archive} on node-c stays: cleanup Job not created: jobs is forbidden`,
      "registry image 198.51.100.1:5000/ckpt:app-0f1e stays: cleanup Job not created: jobs is forbidden",
    ]);
  });

  it("an artifact without its pod (an older status) keeps the old warning", async () => {
    const t = setup();
    const report = await t.routed.cleanup([art({ pod: undefined, mode: "Direct" })]);
    expect(t.created).toEqual([]);
    expect(report.warnings).toEqual([
      `no ms2m-agent on node-c: checkpoint archive ${archive} stays on the node`,
    ]);
  });

  it("a source node with an agent: the agent releases, no cleanup Job", async () => {
    const t = setup();
    const report = await t.routed.cleanup([art({ sourceNode: "node-a" })]);
    expect(t.created).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(t.released.flat().map((a) => a.sourceNode)).toEqual(["node-a"]);
  });
});
