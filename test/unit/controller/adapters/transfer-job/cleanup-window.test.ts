// The archive a node-proxy checkpoint whose answer was lost may have left (ArtifactRef
// archiveWindow): RoutedTransfer.cleanup puts it into the cleanup Job pinned to the source node,
// whether or not an agent runs there (no agent recorded it), with a Normal Event text that says
// what is looked for; the Job mounts the checkpoints folder read-write and may wait for the
// window to settle.
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../../src/common/errors.ts";
import {
  buildCleanupJob,
  type CleanupJobInput,
} from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import {
  RoutedTransfer,
  type JobTransfer,
} from "../../../../../src/controller/adapters/transfer-job/transfer.ts";
import type { ArtifactRef, CleanupReport, TransferPort } from "../../../../../src/controller/ports.ts";
import { MAX_CLEANUP_SETTLE_SECONDS, cleanupRequestSchema } from "../../../../../src/transfer/job.ts";
import type { TransferRunner } from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import { archive, cleanupSettings, request, uid } from "./fixtures.ts";

const window = {
  from: "2026-01-01T00:00:00.000Z",
  to: "2026-01-01T00:00:25.000Z",
  settleUntil: "2026-01-01T00:02:25.000Z",
};
// What artifactsOf yields for a NodeProxy checkpoint without a result: no archive path, no image.
const lost = (a: Partial<ArtifactRef> = {}): ArtifactRef => ({
  mode: "Registry",
  sourceNode: "node-c",
  targetNode: "node-b",
  namespace: "shop",
  pod: "web-0",
  container: "app",
  key: `${uid}/app`,
  archiveWindow: window,
  ...a,
});

function setup(runner: TransferRunner = "auto", opts: { createFails?: boolean } = {}) {
  const created: CleanupJobInput[] = [];
  const released: ArtifactRef[][] = [];
  const job = {
    cleanup: () => Promise.resolve({ warnings: [] }),
    // As JobTransfer.startCleanup: the request must pass the Job's schema.
    startCleanup: (input: CleanupJobInput) => {
      if (opts.createFails) return Promise.reject(new Ms2mError("Forbidden", "jobs is forbidden"));
      cleanupRequestSchema.parse(input.request);
      created.push(input);
      return Promise.resolve({
        name: buildCleanupJob(input, cleanupSettings).metadata!.name!,
        created: true,
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
  // An agent on node-a and node-b, none on node-c.
  const locator = {
    urlFor: (node: string) =>
      node === "node-c"
        ? Promise.reject(new Ms2mError("ServiceUnavailable", "no Ready ms2m-agent"))
        : Promise.resolve(`https://${node}:9443`),
  };
  return { routed: new RoutedTransfer(agent, job, locator, runner), created, released };
}

describe("RoutedTransfer.cleanup of a node-proxy checkpoint without an answer", () => {
  it("no agent on the source node: a Job pinned there looks for the window's archive", async () => {
    const t = setup();
    const report = await t.routed.cleanup([lost()]);
    expect(report.warnings).toEqual([]);
    expect(t.created).toHaveLength(1);
    expect(t.created[0]?.node).toBe("node-c");
    expect(t.created[0]?.request).toEqual(request({ archiveWindows: [{ container: "app", ...window }] }));
    expect(report.started).toEqual([
      "Job ms2m-cleanup-0f1e2d3c4b5a-node-c deletes any checkpoint archive of shop/web-0 container app " +
        "the kubelet on node-c wrote between 2026-01-01T00:00:00.000Z and 2026-01-01T00:00:25.000Z " +
        "(a node-proxy checkpoint whose answer was lost; looked for once it has ended, after 2026-01-01T00:02:25.000Z)",
    ]);
    // The target's agent still releases what it may hold of the migration.
    expect(t.released.flat().map((a) => a.sourceNode)).toEqual(["node-b"]);
  });

  it.each(["auto", "job", "agent"] as const)(
    "an agent on the source node (runner %s): still a Job there, and the agent releases its records",
    async (runner) => {
      const t = setup(runner);
      const report = await t.routed.cleanup([lost({ sourceNode: "node-a" })]);
      expect(report.warnings).toEqual([]);
      expect(t.created.map((c) => [c.node, c.request.archiveWindows.map((w) => w.container)])).toEqual([
        ["node-a", ["app"]],
      ]);
      expect(t.released.flat().map((a) => a.sourceNode)).toContain("node-a");
      // The agent releases by record; the window is the Job's alone (no second report of it).
      expect(t.released.flat().filter((a) => a.archiveWindow)).toEqual([]);
    },
  );

  it("one Job per migration and node: with a named archive of another container, both in it", async () => {
    const t = setup();
    await t.routed.cleanup([
      lost(),
      lost({
        container: "side",
        key: `${uid}/side`,
        archiveWindow: undefined,
        archivePath: archive.replace("-app-", "-side-"),
      }),
    ]);
    expect(t.created).toHaveLength(1);
    expect(t.created[0]?.request.archives).toEqual([
      { container: "side", archive: archive.replace("-app-", "-side-") },
    ]);
    expect(t.created[0]?.request.archiveWindows).toEqual([{ container: "app", ...window }]);
  });

  it("without a window (a recorded result, the agent's route) no archive window is planned", async () => {
    const t = setup();
    await t.routed.cleanup([lost({ archiveWindow: undefined, sourceNode: "node-a" })]);
    expect(t.created).toEqual([]);
  });

  it("an artifact that does not name its pod, or a Job that cannot be created, is a warning", async () => {
    const t = setup();
    const report = await t.routed.cleanup([lost({ pod: undefined })]);
    expect(t.created).toEqual([]);
    expect(report.warnings).toEqual([
      "the checkpoint archive a node-proxy checkpoint of app may have written stays on node-c",
    ]);
    const failing = setup("auto", { createFails: true });
    const r2 = await failing.routed.cleanup([lost()]);
    expect(r2.warnings).toHaveLength(1);
    expect(r2.warnings[0]).toMatch(
      /^any checkpoint archive of shop\/web-0 container app .* stays: cleanup Job not created: jobs is forbidden$/,
    );
  });
});

describe("buildCleanupJob with archive windows", () => {
  const input = (r: Parameters<typeof request>[0]): CleanupJobInput => ({
    migrationUid: uid,
    source: "shop/web-0",
    node: "node-c",
    request: request(r),
  });
  const windowJob = () =>
    buildCleanupJob(input({ archiveWindows: [{ container: "app", ...window }] }), cleanupSettings);

  it("is pinned to the node, mounts its checkpoints folder read-write and may wait for the window", () => {
    const job = windowJob();
    const pod = job.spec!.template.spec!;
    expect(job.metadata?.name).toBe("ms2m-cleanup-0f1e2d3c4b5a-node-c");
    expect(pod.nodeName).toBe("node-c");
    expect(pod.containers[0]!.volumeMounts).toEqual([
      { name: "checkpoints", mountPath: "/var/lib/kubelet/checkpoints", readOnly: false },
    ]);
    const env = Object.fromEntries((pod.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
    expect(JSON.parse(env.CLEANUP_REQUEST ?? "{}").archiveWindows).toEqual([{ container: "app", ...window }]);
    expect(job.spec?.activeDeadlineSeconds).toBe(
      cleanupSettings.activeDeadlineSeconds + MAX_CLEANUP_SETTLE_SECONDS,
    );
  });

  it("a Job of named archives only keeps the transfer deadline; windows need the node", () => {
    const named = buildCleanupJob(input({ archives: [{ container: "app", archive }] }), cleanupSettings);
    expect(named.spec?.activeDeadlineSeconds).toBe(cleanupSettings.activeDeadlineSeconds);
    expect(() =>
      buildCleanupJob(
        { ...input({ archiveWindows: [{ container: "app", ...window }] }), node: undefined },
        cleanupSettings,
      ),
    ).toThrow(/needs their node/);
  });
});
