// The cleanup Job's one-shot (`ms2m-agent cleanup`, src/agent/jobs/cleanup.ts) with an archive
// window (a node-proxy checkpoint whose answer was lost: the archive's name is unknown) against a
// temp checkpoints folder: it removes the archives of exactly that namespace/pod/container whose
// kubelet time lies in the window, and nothing else: another container's or pod's, one a second
// outside the window, a symlink (and what it points to) and a folder named like ours all stay.
// It lists the folder only once the window has settled, so an archive the kubelet finishes
// writing late is still found.
import { spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { runCleanupJob } from "../../../src/agent/jobs/cleanup.ts";
import { parseCleanupJobResult, type CleanupRequest } from "../../../src/transfer/job.ts";
import { repoPath } from "../../../tooling/stack/manifests.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

const uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const nameOf = (time: string, container = "app", pod = "web-0") =>
  `checkpoint-${pod}_shop-${container}-${time}.tar`;
// The window of a request at 12:00:00 UTC: [11:59:50, 12:00:15], settled long ago.
const window = {
  container: "app",
  from: "2025-01-01T11:59:50Z",
  to: "2025-01-01T12:00:15Z",
  settleUntil: "2025-01-01T12:02:15Z",
};

const work = tempDir("cleanup-window");
let dir: string;
let outside: string;
let n = 0;

beforeEach(() => {
  // A fresh checkpoints folder per test: what is left in it is what the test asserts.
  dir = join(work, `checkpoints-${n}`);
  outside = join(work, `outside-${n}`);
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(outside);
});

afterAll(async () => {
  await removeTempDir(work);
});

const request = (r: Partial<CleanupRequest>): CleanupRequest => ({
  migration: uid,
  namespace: "shop",
  pod: "web-0",
  archives: [],
  archiveWindows: [window],
  registryImages: [],
  ...r,
});

const baseEnv = (resultFile: string): NodeJS.ProcessEnv => ({
  NODE_NAME: "node-c",
  AGENT_CHECKPOINTS_DIR: dir,
  LOG_LEVEL: "silent",
  CLEANUP_RESULT_FILE: resultFile,
});

/** The cleanup in-process; its exit code and the result it wrote. */
async function cleanupInProcess(req: CleanupRequest) {
  const file = join(work, `result-${n++}`);
  const code = await runCleanupJob({ ...baseEnv(file), CLEANUP_REQUEST: JSON.stringify(req) });
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

describe("ms2m-agent cleanup with an archive window", () => {
  it("removes our archives stamped in the window and nothing else; a symlink or folder is refused", async () => {
    const ours = nameOf("2025-01-01T12:00:02Z");
    const oursLocal = nameOf("2025-01-01T13:00:15+01:00"); // 12:00:15 UTC: the window's end
    const oursAtStart = nameOf("2025-01-01T11:59:50Z");
    const keep = {
      before: nameOf("2025-01-01T11:59:49Z"), // a second before the window
      after: nameOf("2025-01-01T12:00:16Z"), // a second after it
      localAfter: nameOf("2025-01-01T12:00:02-01:00"), // 13:00:02 UTC
      otherContainer: nameOf("2025-01-01T12:00:02Z", "side"),
      otherPod: nameOf("2025-01-01T12:00:02Z", "app", "web-1"),
      partial: `${nameOf("2025-01-01T12:00:03Z")}.tmp`,
    };
    for (const f of [ours, oursLocal, oursAtStart]) writeFileSync(join(dir, f), "archive");
    for (const f of Object.values(keep)) writeFileSync(join(dir, f), "keep");
    const viaLink = nameOf("2025-01-01T12:00:05Z");
    const precious = join(outside, "precious");
    writeFileSync(precious, "keep");
    symlinkSync(precious, join(dir, viaLink));
    const aFolder = nameOf("2025-01-01T12:00:06Z");
    mkdirSync(join(dir, aFolder));

    const { code, stderr, result } = await cleanupProcess(request({}));
    expect(stderr).toBe("");
    expect(code).toBe(1); // the symlink and the folder are refused
    expect(result?.ok).toBe(false);
    expect(result?.items).toEqual([
      { kind: "archive", name: oursAtStart, outcome: "deleted" },
      { kind: "archive", name: ours, outcome: "deleted" },
      { kind: "archive", name: viaLink, outcome: "refused", message: expect.stringMatching(/symlink/) },
      {
        kind: "archive",
        name: aFolder,
        outcome: "refused",
        message: expect.stringMatching(/not a regular file/),
      },
      { kind: "archive", name: oursLocal, outcome: "deleted" },
    ]);
    expect(readdirSync(dir).sort()).toEqual([...Object.values(keep), viaLink, aFolder].sort());
    for (const f of Object.values(keep)) expect(readFileSync(join(dir, f), "utf8")).toBe("keep");
    expect(lstatSync(join(dir, viaLink)).isSymbolicLink()).toBe(true);
    expect(readFileSync(precious, "utf8")).toBe("keep");
    expect(lstatSync(join(dir, aFolder)).isDirectory()).toBe(true);
  });

  it("with named archives; nothing left of the window is one absent item; a second run is all absent", async () => {
    const named = nameOf("2025-01-01T10:00:00Z", "side");
    const inWindow = nameOf("2025-01-01T12:00:01Z");
    const other = nameOf("2025-01-01T12:00:01Z", "side"); // side's window is not asked for
    for (const f of [named, inWindow, other]) writeFileSync(join(dir, f), "x");
    const req = request({
      archives: [{ container: "side", archive: `/var/lib/kubelet/checkpoints/${named}` }],
    });
    const first = await cleanupInProcess(req);
    expect(first.code).toBe(0);
    expect(first.result).toEqual({
      ok: true,
      items: [
        { kind: "archive", name: named, outcome: "deleted" },
        { kind: "archive", name: inWindow, outcome: "deleted" },
      ],
    });
    expect(readdirSync(dir)).toEqual([other]);
    const again = await cleanupInProcess(req);
    expect(again.code).toBe(0);
    expect(again.result?.items).toEqual([
      { kind: "archive", name: named, outcome: "absent" },
      {
        kind: "archive",
        name: "checkpoint-web-0_shop-app-* written 2025-01-01T11:59:50Z to 2025-01-01T12:00:15Z",
        outcome: "absent",
      },
    ]);
    expect(readdirSync(dir)).toEqual([other]);
  });

  it("waits until the window has settled: an archive the kubelet writes meanwhile is removed", async () => {
    const now = Date.now();
    const second = Math.floor(now / 1000) * 1000;
    const iso = (ms: number) => new Date(ms).toISOString();
    const stamp = (ms: number) => iso(ms).replace(".000Z", "Z"); // as the kubelet names it
    const late = nameOf(stamp(second));
    const tooLate = nameOf(stamp(second + 60_000));
    const settleMs = 1500;
    const req = request({
      archiveWindows: [
        {
          container: "app",
          from: iso(second - 10_000),
          to: iso(second + 1000),
          settleUntil: iso(now + settleMs),
        },
      ],
    });
    const running = cleanupInProcess(req);
    // The kubelet finishes the checkpoint it took in the window while the Job waits.
    await new Promise((resolve) => setTimeout(resolve, 500));
    writeFileSync(join(dir, late), "archive");
    writeFileSync(join(dir, tooLate), "keep");
    const { code, result } = await running;
    expect(Date.now() - now).toBeGreaterThanOrEqual(settleMs - 50);
    expect(code).toBe(0);
    expect(result?.items).toEqual([{ kind: "archive", name: late, outcome: "deleted" }]);
    expect(readdirSync(dir)).toEqual([tooLate]);
  });
});
