// The cleanup Job's one-shot (`ms2m-agent cleanup`, src/agent/jobs/cleanup.ts) against a temp
// checkpoints folder and a loopback docker-registry: what a transfer Job pushed (`ms2m-agent
// send`, run here too) is deleted from the registry, the named archive is removed, a missing one
// is "absent", and anything the request names that is not the checkpoint of exactly that
// pod/container in that folder (another pod's, `..`, a path elsewhere, a symlink) is refused and
// left untouched, as is what a symlink points to.
import { spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCleanupJob } from "../../../src/agent/jobs/cleanup.ts";
import { runSendJob } from "../../../src/agent/jobs/send.ts";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { parseCleanupJobResult, parseSendJobResult, type CleanupRequest } from "../../../src/transfer/job.ts";
import { repoPath } from "../../../tooling/stack/manifests.ts";
import { startRegistry, type TestRegistry } from "../../../tooling/agent-fixture.ts";

const uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const KUBELET_DIR = "/var/lib/kubelet/checkpoints";
const nameOf = (pod: string, container: string, second: number) =>
  `checkpoint-${pod}_shop-${container}-2025-01-01T00:00:${String(second).padStart(2, "0")}Z.tar`;

let registry: TestRegistry;
let work: string;
let dir: string;
let outside: string;
let n = 0;

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), "ms2m-cleanup-job-"));
  dir = join(work, "checkpoints");
  outside = join(work, "outside");
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(outside);
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

function baseEnv(resultFile: string): NodeJS.ProcessEnv {
  return {
    NODE_NAME: "node-c",
    AGENT_CHECKPOINTS_DIR: dir,
    AGENT_INSECURE_REGISTRIES: registry.host,
    LOG_LEVEL: "silent",
    CLEANUP_RESULT_FILE: resultFile,
    SEND_RESULT_FILE: resultFile,
  };
}

const request = (r: Partial<CleanupRequest>): CleanupRequest => ({
  migration: uid,
  namespace: "shop",
  pod: "web-0",
  archives: [],
  archiveWindows: [],
  registryImages: [],
  ...r,
});

/** The cleanup in-process; its exit code and the result it wrote. */
async function cleanupInProcess(req: CleanupRequest | string) {
  const file = join(work, `result-${n++}`);
  const code = await runCleanupJob({
    ...baseEnv(file),
    CLEANUP_REQUEST: typeof req === "string" ? req : JSON.stringify(req),
  });
  return { code, result: existsSync(file) ? parseCleanupJobResult(readFileSync(file, "utf8")) : undefined };
}

/** `node cmd/ms2m-agent/main.ts cleanup`, as the Job's container runs it. */
async function cleanupProcess(req: CleanupRequest) {
  const file = join(work, `result-${n++}`);
  const child = spawn(process.execPath, [repoPath("cmd/ms2m-agent/main.ts"), "cleanup"], {
    env: { PATH: process.env.PATH, ...baseEnv(file), CLEANUP_REQUEST: JSON.stringify(req) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { code, stderr, result: parseCleanupJobResult(readFileSync(file, "utf8")) };
}

/** Pushes the archive as the transfer Job does (`ms2m-agent send`, registry destination). */
async function pushWithSendJob(archive: string, image: string): Promise<void> {
  const file = join(work, `send-${n++}`);
  const code = await runSendJob({
    ...baseEnv(file),
    SEND_REQUEST: JSON.stringify({
      migration: uid,
      namespace: "shop",
      pod: "web-0",
      container: "app",
      archive: `${KUBELET_DIR}/${archive}`,
      destination: { type: "registry", image },
    }),
  });
  const result = parseSendJobResult(readFileSync(file, "utf8"));
  expect(result?.ok, JSON.stringify(result)).toBe(true);
  expect(code).toBe(0);
}

async function manifestStatus(image: string): Promise<number> {
  const [, repo, tag] = /^[^/]+\/(.+):([^:]+)$/.exec(image)!;
  const res = await fetch(`http://${registry.host}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  return res.status;
}

describe("ms2m-agent cleanup", () => {
  it("deletes the pushed checkpoint image and the archive; a missing archive is absent; runs again to all absent", async () => {
    const archive = nameOf("web-0", "app", 1);
    const side = nameOf("web-0", "side", 2);
    await writeFakeCheckpointArchive(join(dir, archive), { size: 64 * 1024, containerName: "app" });
    const image = `${registry.host}/ms2m/checkpoints:app-${uid.slice(0, 8)}`;
    await pushWithSendJob(archive, image);
    expect(await manifestStatus(image)).toBe(200);

    const req = request({
      archives: [
        { container: "app", archive: `${KUBELET_DIR}/${archive}` }, // the kubelet's path
        { container: "side", archive: side }, // never written: absent
      ],
      registryImages: [{ image }],
    });
    const first = await cleanupProcess(req);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.result).toEqual({
      ok: true,
      items: [
        { kind: "archive", name: archive, outcome: "deleted" },
        { kind: "archive", name: side, outcome: "absent" },
        { kind: "image", name: image, outcome: "deleted" },
      ],
    });
    expect(existsSync(join(dir, archive))).toBe(false);
    expect(await manifestStatus(image)).toBe(404);

    // Created again (a retried finalization, a restarted controller): nothing left to delete.
    const again = await cleanupInProcess(req);
    expect(again.code).toBe(0);
    expect(again.result?.items.map((i) => i.outcome)).toEqual(["absent", "absent", "absent"]);
  });

  it("refuses what is not the checkpoint of exactly this pod and container in the folder, and touches nothing else", async () => {
    const otherPod = nameOf("web-1", "app", 3);
    const otherContainer = nameOf("web-0", "db", 4);
    const elsewhere = nameOf("web-0", "app", 5);
    const viaLink = nameOf("web-0", "app", 6);
    const aFolder = nameOf("web-0", "app", 7);
    for (const f of [join(dir, otherPod), join(dir, otherContainer), join(outside, elsewhere)])
      writeFileSync(f, "keep");
    const target = join(outside, "precious");
    writeFileSync(target, "keep");
    symlinkSync(target, join(dir, viaLink));
    mkdirSync(join(dir, aFolder));

    const { code, result } = await cleanupInProcess(
      request({
        archives: [
          { container: "app", archive: otherPod }, // another pod's checkpoint
          { container: "app", archive: otherContainer }, // another container's, named as ours
          { container: "db", archive: `${KUBELET_DIR}/${otherPod}` }, // another pod's, full path
          { container: "app", archive: join(outside, elsewhere) }, // a path elsewhere
          { container: "app", archive: `${KUBELET_DIR}/../${elsewhere}` },
          { container: "app", archive: `${dir}/../outside/${elsewhere}` },
          { container: "app", archive: `../outside/${elsewhere}` },
          { container: "app", archive: viaLink }, // a symlink: not followed, not removed
          { container: "app", archive: aFolder }, // not a regular file
        ],
      }),
    );
    expect(code).toBe(1);
    expect(result?.ok).toBe(false);
    expect(result?.items).toHaveLength(9);
    expect(result?.items.every((i) => i.outcome === "refused")).toBe(true);
    expect(result?.items[7]?.message).toMatch(/symlink/);
    for (const f of [join(dir, otherPod), join(dir, otherContainer), join(outside, elsewhere), target])
      expect(readFileSync(f, "utf8")).toBe("keep");
    expect(lstatSync(join(dir, viaLink)).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(dir, aFolder)).isDirectory()).toBe(true);
  });

  it("one refused item does not stop the others", async () => {
    const ours = nameOf("web-0", "app", 8);
    writeFileSync(join(dir, ours), "x");
    const { code, result } = await cleanupInProcess(
      request({
        archives: [
          { container: "app", archive: "/etc/passwd" },
          { container: "app", archive: ours },
        ],
        registryImages: [{ image: `${registry.host}/ms2m/checkpoints:never-pushed` }],
      }),
    );
    expect(code).toBe(1);
    expect(result?.items.map((i) => i.outcome)).toEqual(["refused", "deleted", "absent"]);
    expect(existsSync(join(dir, ours))).toBe(false);
    expect(readFileSync("/etc/passwd", "utf8").length).toBeGreaterThan(0);
  });

  it("an invalid request deletes nothing and says why; invalid configuration exits 2", async () => {
    const ours = nameOf("web-0", "app", 9);
    writeFileSync(join(dir, ours), "x");
    const bad = await cleanupInProcess(
      JSON.stringify({ ...request({ archives: [{ container: "app", archive: ours }] }), namespace: "Shop" }),
    );
    expect(bad.code).toBe(1);
    expect(bad.result?.ok).toBe(false);
    expect(bad.result?.error).toMatch(/invalid CLEANUP_REQUEST: namespace/);
    expect(existsSync(join(dir, ours))).toBe(true);
    const notJson = await cleanupInProcess("{nope");
    expect(notJson.result?.error).toMatch(/CLEANUP_REQUEST is not JSON/);
    expect(await runCleanupJob({ NODE_NAME: "node-c", AGENT_CHECKPOINTS_DIR: "relative" })).toBe(2);
  });
});
