import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { Readable } from "node:stream";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listStoredImages, storageReference, storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import { checkpointArchiveFiles, writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { CHECKPOINT_NAME_ANNOTATION } from "../../../src/checkpoint/image.ts";
import { AgentClient } from "../../../src/transfer/client.ts";
import { isMs2mError } from "../../../src/common/errors.ts";
import {
  TOKENS,
  makePki,
  pax,
  removeRoot,
  residue,
  startAgent,
  startRegistry,
  tarOf,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";
import { sleep } from "../../../tooling/exec.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const TS = "2025-01-02T03:04:05Z";
const archiveName = (pod: string, ns: string, c: string) => `checkpoint-${pod}_${ns}-${c}-${TS}.tar`;

let pki: Pki;
let source: TestAgent;
let target: TestAgent;
let registry: TestRegistry;
let dispatcher: Agent;
let controller: AgentClient;

beforeAll(async () => {
  pki = makePki();
  [source, target, registry] = await Promise.all([
    startAgent(pki, { host: "127.0.0.1" }),
    startAgent(pki, { host: "127.0.0.2" }),
    startRegistry(),
  ]);
  for (const a of [source, target]) {
    // the agents in this process reach the test registry over HTTP on loopback
    (a.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
  }
  dispatcher = new Agent({ connect: { ca: pki.ca } });
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
});

afterAll(async () => {
  await controller?.close();
  await dispatcher?.close();
  await Promise.all([source?.stop(), target?.stop(), registry?.stop()]);
  await removeTempDir(pki?.dir);
});

/** Exports the layer of a stored image and returns its digest (byte identity end to end). */
function storedLayerDigest(a: TestAgent, image: string): string {
  const out = tempDir("export");
  try {
    execFileSync("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--dest-oci-accept-uncompressed-layers",
      storageReference(a.store, image),
      `oci:${out}:x`,
    ]);
    const index = JSON.parse(readFileSync(join(out, "index.json"), "utf8"));
    const man = JSON.parse(
      readFileSync(join(out, "blobs", "sha256", index.manifests[0].digest.slice(7)), "utf8"),
    );
    return sha(readFileSync(join(out, "blobs", "sha256", man.layers[0].digest.slice(7))));
  } finally {
    execFileSync("rm", ["-rf", out]);
  }
}

async function placeArchive(a: TestAgent, pod: string, container: string, size: number) {
  const name = archiveName(pod, "default", container);
  const path = join(a.checkpointsDir, name);
  await writeFakeCheckpointArchive(path, { size, containerName: container });
  return { name, path, ...(await digestFile(path)) };
}

describe("transfer paths (real skopeo, containers-storage, registry)", () => {
  it("direct: source agent streams to the target agent, which loads a byte-identical annotated image", async () => {
    const a = await placeArchive(source, "web-0", "app", 3 * 1024 * 1024);
    const image = "localhost/ms2m/default-web-0-app:m1";
    const res = await controller.send(source.url, {
      migration: "m1",
      namespace: "default",
      pod: "web-0",
      container: "app",
      archive: a.path,
      destination: { type: "agent", url: target.url, image },
    });
    expect(res.digest).toBe(a.digest);
    expect(res.size).toBe(a.size);
    const manifest = (await storedManifest(target.store, image)) as { annotations: Record<string, string> };
    expect(manifest.annotations[CHECKPOINT_NAME_ANNOTATION]).toBe("app");
    expect(storedLayerDigest(target, image)).toBe(a.digest);
    expect(existsSync(a.path)).toBe(false); // archive removed after use
    expect(residue(target)).toEqual([]);
    expect(await listStoredImages(source.store)).toEqual([]);
  });

  it("registry: push from the source, pull + load on the target, digest pinned", async () => {
    const a = await placeArchive(source, "web-1", "sidecar", 2 * 1024 * 1024);
    const remote = `${registry.host}/ms2m/checkpoints:m2-sidecar`;
    const sent = await controller.send(source.url, {
      migration: "m2",
      namespace: "default",
      pod: "web-1",
      container: "sidecar",
      archive: a.name,
      destination: { type: "registry", image: remote },
    });
    expect(sent.digest).toBe(a.digest);
    const image = "localhost/ms2m/default-web-1-sidecar:m2";
    const pulled = await controller.pull(target.url, {
      migration: "m2",
      source: remote,
      image,
      expectedDigest: sent.digest,
    });
    expect(pulled.containerName).toBe("sidecar");
    expect(storedLayerDigest(target, image)).toBe(a.digest);
    expect(residue(target)).toEqual([]);
    // a wrong pinned digest is refused before anything is loaded
    await expect(
      controller.pull(target.url, {
        migration: "m2",
        source: remote,
        image: "localhost/x/y:z",
        expectedDigest: sha(Buffer.from("x")),
      }),
    ).rejects.toMatchObject({ reason: "Conflict" });
  });

  it("multi-container pod: one archive and one image per container, concurrently", async () => {
    const [a, b] = await Promise.all([
      placeArchive(source, "multi-0", "one", 1 << 20),
      placeArchive(source, "multi-0", "two", 1 << 20),
    ]);
    const results = await Promise.all(
      [a!, b!].map((x, i) =>
        controller.send(source.url, {
          migration: "m3",
          namespace: "default",
          pod: "multi-0",
          container: i === 0 ? "one" : "two",
          archive: x.name,
          destination: { type: "agent", url: target.url, image: `localhost/ms2m/multi-0-${i}:m3` },
        }),
      ),
    );
    expect(results.map((r) => r.digest)).toEqual([a!.digest, b!.digest]);
  });
});

// ---- malicious and broken inputs, straight at the receive endpoint ----

async function receive(
  body: Buffer,
  opts: { headers?: Record<string, string>; query?: Record<string, string>; token?: string | null } = {},
) {
  const url = new URL("/v1/archives", target.url);
  const q = { container: "app", image: "localhost/ms2m/evil:t", ...opts.query };
  for (const [k, v] of Object.entries(q)) url.searchParams.set(k, v);
  const headers: Record<string, string> = {
    "content-type": "application/x-tar",
    "ms2m-archive-digest": sha(body),
    ...opts.headers,
  };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKENS.agent}`;
  const res = await request(url, { method: "POST", headers, body, dispatcher });
  const status = (await res.body.json()) as { kind: string; reason: string; code: number; message: string };
  return { code: res.statusCode, status };
}

const file = (name: string, data = "x") => ({ name, data: Buffer.from(data) });
/** The smallest archive the layout check accepts (src/checkpoint/layout.ts). */
const validArchive = () =>
  tarOf([
    { name: "checkpoint/", type: "5", mode: 0o700 },
    ...checkpointArchiveFiles().map(([name, data]) => ({ name, data })),
  ]);
const bad: [string, () => Buffer, number, Record<string, string>?][] = [
  ["absolute path", () => tarOf([file("/etc/cron.d/evil")]), 422],
  ["dot-dot path", () => tarOf([file("checkpoint/../../etc/passwd")]), 422],
  ["symlink escaping the root", () => tarOf([{ name: "l", type: "2", linkname: "../../../etc" }]), 422],
  ["absolute symlink", () => tarOf([{ name: "l", type: "2", linkname: "/etc/shadow" }]), 422],
  ["hard link to a host file", () => tarOf([{ name: "h", type: "1", linkname: "/etc/passwd" }]), 422],
  ["hard link with dot-dot", () => tarOf([{ name: "h", type: "1", linkname: "../x" }]), 422],
  ["entry through a symlink", () => tarOf([{ name: "d", type: "2", linkname: "sub" }, file("d/x")]), 422],
  ["character device", () => tarOf([{ name: "dev/mem", type: "3" }]), 422],
  ["block device", () => tarOf([{ name: "sda", type: "4" }]), 422],
  ["FIFO", () => tarOf([{ name: "fifo", type: "6" }]), 422],
  ["duplicate entry", () => tarOf([file("config.dump", "a"), file("config.dump", "b")]), 422],
  [
    "oversized PAX header",
    () => tarOf([{ name: "p", type: "x", data: Buffer.alloc(128 * 1024, 0x41) }, file("a")]),
    422,
  ],
  [
    "oversized GNU long name",
    () => tarOf([{ name: "././@LongLink", type: "L", data: Buffer.alloc(100 * 1024, 0x61) }, file("a")]),
    422,
  ],
  [
    "PAX path with dot-dot",
    () => tarOf([{ name: "p", type: "x", data: pax({ path: "../../evil" }) }, file("a")]),
    422,
  ],
  [
    "capability xattr",
    () =>
      tarOf([{ name: "p", type: "x", data: pax({ "SCHILY.xattr.security.capability": "x" }) }, file("a")]),
    422,
  ],
  ["setuid file", () => tarOf([{ ...file("suid"), mode: 0o4755 }]), 422],
  ["global PAX header", () => tarOf([{ name: "g", type: "g", data: pax({ comment: "x" }) }, file("a")]), 422],
  ["data after end marker", () => Buffer.concat([tarOf([file("a")]), Buffer.from("smuggled")]), 422],
  ["header checksum mismatch", () => tarOf([{ ...file("a"), badChecksum: true }]), 400],
  [
    "truncated tar (no end marker)",
    () => tarOf([file("dump.log", "x".repeat(2000))], { end: false }).subarray(0, 1024),
    400,
  ],
  ["not a tar at all", () => Buffer.alloc(4096, 7), 400],
  ["empty body", () => Buffer.alloc(0), 400],
];

describe("malicious and broken archives: clear 4xx, no residue, no image", () => {
  for (const [name, make, code] of bad) {
    it(name, async () => {
      const r = await receive(make());
      expect(r.code).toBe(code);
      expect(r.status.kind).toBe("Status");
      expect(r.status.code).toBe(code);
      expect(residue(target)).toEqual([]);
    });
  }

  const good = validArchive();
  const requestCases: [string, () => Promise<{ code: number; status: { reason: string } }>, number][] = [
    ["wrong content type", () => receive(good, { headers: { "content-type": "application/json" } }), 415],
    ["missing digest", () => receive(good, { headers: { "ms2m-archive-digest": "" } }), 400],
    ["malformed digest", () => receive(good, { headers: { "ms2m-archive-digest": "md5:abc" } }), 400],
    [
      "digest mismatch",
      () => receive(good, { headers: { "ms2m-archive-digest": sha(Buffer.from("other")) } }),
      400,
    ],
    [
      "declared size differs from Content-Length",
      () => receive(good, { headers: { "ms2m-archive-size": "10" } }),
      400,
    ],
    [
      "declared size above the maximum",
      () => receive(good, { headers: { "ms2m-archive-size": String(64 * 1024 ** 4) } }),
      400,
    ],
    [
      "image outside localhost/",
      () => receive(good, { query: { image: "docker.io/library/busybox:latest" } }),
      400,
    ],
    ["invalid container name", () => receive(good, { query: { container: "../x" } }), 400],
    ["no token", () => receive(good, { token: null }), 401],
    ["unknown token", () => receive(good, { token: "forged" }), 401],
    ["ServiceAccount without the right", () => receive(good, { token: TOKENS.noRights }), 403],
    ["controller may not push archives", () => receive(good, { token: TOKENS.controller }), 403],
    ["non-ServiceAccount user", () => receive(good, { token: TOKENS.user }), 403],
  ];
  for (const [name, run, code] of requestCases) {
    it(name, async () => {
      const r = await run();
      expect(r.code).toBe(code);
      expect(residue(target)).toEqual([]);
    });
  }

  it("no image was loaded by any rejected request", async () => {
    const names = await listStoredImages(target.store);
    expect(names.some((n) => n.includes("evil"))).toBe(false);
  });

  it("body longer than declared (chunked) → 400 and no residue", async () => {
    const url = new URL("/v1/archives?container=app&image=localhost/ms2m/evil:t", target.url);
    const body = tarOf([file("dump.log", "y".repeat(5000))]);
    const res = await request(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.agent}`,
        "content-type": "application/x-tar",
        "ms2m-archive-size": "1024",
        "ms2m-archive-digest": sha(body),
      },
      body: Readable.from(
        (async function* () {
          yield body;
        })(),
      ),
      dispatcher,
    });
    expect(res.statusCode).toBe(400);
    await res.body.dump();
    expect(residue(target)).toEqual([]);
  });
});

describe("send side: only the matching kubelet archive", () => {
  const base = { migration: "m9", namespace: "default", pod: "web-9", container: "app" };
  const dest = { type: "agent" as const, url: "https://127.0.0.2:1", image: "localhost/a/b:c" };
  it.each([
    ["/etc/passwd", 403],
    ["../../../etc/passwd", 403],
    [archiveName("other-pod", "default", "app"), 403],
    [archiveName("web-9", "default", "app"), 404],
  ])("archive %s → %i", async (archive, code) => {
    await expect(controller.send(source.url, { ...base, archive, destination: dest })).rejects.toMatchObject({
      code,
    });
  });

  it("refuses a symlink planted in the checkpoints folder", async () => {
    const secret = join(source.root, "secret");
    writeFileSync(secret, "s3cret");
    symlinkSync(secret, join(source.checkpointsDir, archiveName("web-9", "default", "app")));
    await expect(
      controller.send(source.url, {
        ...base,
        archive: archiveName("web-9", "default", "app"),
        destination: dest,
      }),
    ).rejects.toMatchObject({
      reason: "Forbidden",
    });
  });

  it("an agent token may not command a send; a bad JSON body is 4xx", async () => {
    const agentClient = new AgentClient({ ca: pki.ca, token: () => TOKENS.agent });
    await expect(
      agentClient.send(source.url, { ...base, archive: "x", destination: dest }),
    ).rejects.toMatchObject({ code: 403 });
    await agentClient.close();
    const res = await request(new URL("/v1/send", source.url), {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.controller}`, "content-type": "application/json" },
      body: JSON.stringify({ ...base, archive: "x", destination: { type: "ftp" } }),
      dispatcher,
    });
    expect(res.statusCode).toBe(422);
    await res.body.dump();
  });

  it("failed send to an unreachable target removes the archive by default and reports the reason", async () => {
    const a = await placeArchive(source, "web-8", "app", 64 * 1024);
    const err = await controller
      .send(source.url, { ...base, pod: "web-8", archive: a.name, destination: dest })
      .catch((e: unknown) => e);
    expect(isMs2mError(err, "ServiceUnavailable")).toBe(true);
    expect(existsSync(a.path)).toBe(false);
  });
});

describe("operations", () => {
  it("health, readiness and metrics without unbounded labels", async () => {
    for (const p of ["/healthz", "/readyz"]) {
      const r = await request(new URL(p, target.url), { dispatcher });
      expect(r.statusCode).toBe(200);
      await r.body.dump();
    }
    const m = await request(new URL("/metrics", target.url), { dispatcher });
    const text = await m.body.text();
    expect(text).toContain("ms2m_agent_transfer_bytes_total");
    expect(text).toContain('ms2m_agent_failures_total{operation="receive",reason="Invalid"}');
    expect(text).not.toMatch(/migration=|image=|digest=/);
  });

  it("over the concurrency limit → 429 with Retry-After", async () => {
    const a = await startAgent(pki, { host: "127.0.0.2", env: { AGENT_MAX_CONCURRENT_TRANSFERS: "1" } });
    try {
      const url = new URL("/v1/archives?container=app&image=localhost/ms2m/slow:t", a.url);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow = request(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKENS.agent}`,
          "content-type": "application/x-tar",
          "ms2m-archive-size": "2048",
          "ms2m-archive-digest": sha(Buffer.alloc(2048)),
        },
        body: Readable.from(
          (async function* () {
            yield Buffer.alloc(512);
            await gate;
            yield Buffer.alloc(1536);
          })(),
        ),
        dispatcher,
      });
      await sleep(200);
      const second = await request(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKENS.agent}`,
          "content-type": "application/x-tar",
          "ms2m-archive-digest": sha(Buffer.alloc(0)),
        },
        body: Buffer.alloc(0),
        dispatcher,
      });
      expect(second.statusCode).toBe(429);
      expect(second.headers["retry-after"]).toBe("5");
      await second.body.dump();
      release();
      const first = await slow;
      expect(first.statusCode).toBe(400); // all-zero body: no entries but valid end → still checked
      await first.body.dump();
    } finally {
      await a.stop();
    }
  });

  it("crash safety: leftovers of a killed agent are swept at startup; the next transfer works", async () => {
    const a = await startAgent(pki, { host: "127.0.0.2" });
    const stale = join(a.workDir, "tmp", "dead-transfer", "blobs", "sha256");
    execFileSync("mkdir", ["-p", stale]);
    writeFileSync(join(stale, ".partial"), "half an archive");
    await a.agent.shutdown(100);
    // restart on the same roots
    const again = await startAgent(pki, {
      host: "127.0.0.2",
      env: {
        AGENT_WORK_DIR: a.workDir,
        AGENT_STORAGE_GRAPHROOT: a.store.graphRoot,
        AGENT_STORAGE_RUNROOT: a.store.runRoot,
      },
    });
    try {
      expect(residue(again)).toEqual([]);
      const body = validArchive();
      const r = await request(
        new URL("/v1/archives?container=app&image=localhost/ms2m/after-crash:t", again.url),
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${TOKENS.agent}`,
            "content-type": "application/x-tar",
            "ms2m-archive-digest": sha(body),
          },
          body,
          dispatcher,
        },
      );
      expect(r.statusCode).toBe(201);
      await r.body.dump();
    } finally {
      await again.stop();
      await removeRoot(a.root);
    }
  });

  it("killed mid-transfer (client aborts): partial file removed, no image", async () => {
    const url = new URL("/v1/archives?container=app&image=localhost/ms2m/aborted:t", target.url);
    const ac = new AbortController();
    const p = request(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.agent}`,
        "content-type": "application/x-tar",
        "ms2m-archive-size": String(1 << 20),
        "ms2m-archive-digest": sha(Buffer.alloc(1)),
      },
      body: Readable.from(
        (async function* () {
          yield tarOf([file("dump.log", "z".repeat(1000))], { end: false });
          await sleep(300);
          ac.abort();
          yield Buffer.alloc(10);
        })(),
      ),
      dispatcher,
      signal: ac.signal,
    });
    await p.catch(() => undefined);
    for (let i = 0; i < 20 && target.agent.inFlightCount > 0; i++) await sleep(50);
    expect(residue(target)).toEqual([]);
    expect((await listStoredImages(target.store)).some((n) => n.includes("aborted"))).toBe(false);
  });
});
