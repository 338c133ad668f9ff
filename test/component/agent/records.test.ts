// Idempotent checkpoint and send per (migration, container): a real agent with a fake kubelet
// (HTTPS, writes the archive like the kubelet does), the fake reviewer, real skopeo and a
// loopback registry.
import { copyFileSync, existsSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { AgentClient } from "../../../src/transfer/client.ts";
import type { CheckpointRecord } from "../../../src/transfer/types.ts";
import {
  TOKENS,
  makePki,
  startAgent,
  startRegistry,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";
import { sleep } from "../../../tooling/exec.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";

let pki: Pki;
let kubelet: Server;
let kubeletUrl: string;
let kubeletCalls: string[] = [];
/** Delay of the fake kubelet's answer (to overlap repeated requests). */
let kubeletDelayMs = 0;
let source: TestAgent;
let target: TestAgent;
let registry: TestRegistry;
let controller: AgentClient;
let agentCaller: AgentClient;
let stamp = 0;

function kubeletFor(getDir: () => string) {
  return createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
    void (async () => {
      const m = /^\/checkpoint\/([^/]+)\/([^/]+)\/([^/?]+)/.exec(req.url ?? "");
      if (req.method !== "POST" || !m || req.headers.authorization !== "Bearer kubelet-token") {
        res.statusCode = 403;
        res.end("forbidden");
        return;
      }
      const [ns, pod, container] = [m[1]!, m[2]!, m[3]!];
      kubeletCalls.push(`${ns}/${pod}/${container}`);
      await sleep(kubeletDelayMs);
      const ts = new Date(Date.UTC(2025, 0, 1, 0, 0, stamp++)).toISOString().replace(".000", "");
      const path = join(getDir(), `checkpoint-${pod}_${ns}-${container}-${ts}.tar`);
      await writeFakeCheckpointArchive(path, { size: 256 * 1024, containerName: container });
      res.setHeader("content-type", "application/json");
      // The kubelet answers with its own folder's path.
      res.end(JSON.stringify({ items: [`/var/lib/kubelet/checkpoints/${path.split("/").pop()}`] }));
    })();
  });
}

beforeAll(async () => {
  pki = makePki();
  writeFileSync(join(pki.dir, "kubelet-token"), "kubelet-token\n");
  kubelet = kubeletFor(() => source.checkpointsDir);
  await new Promise<void>((r) => kubelet.listen(0, "127.0.0.1", () => r()));
  kubeletUrl = `https://127.0.0.1:${(kubelet.address() as { port: number }).port}`;
  const kubeletEnv = {
    AGENT_KUBELET_URL: kubeletUrl,
    AGENT_KUBELET_CA_FILE: pki.caFile,
    AGENT_KUBELET_TOKEN_FILE: join(pki.dir, "kubelet-token"),
  };
  [source, target, registry] = await Promise.all([
    startAgent(pki, { host: "127.0.0.1", env: kubeletEnv }),
    startAgent(pki, { host: "127.0.0.2" }),
    startRegistry(),
  ]);
  (source.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
  agentCaller = new AgentClient({ ca: pki.ca, token: () => TOKENS.agent });
});

afterAll(async () => {
  await controller?.close();
  await agentCaller?.close();
  await Promise.all([source?.stop(), target?.stop(), registry?.stop()]);
  await new Promise<void>((r) => (kubelet ? kubelet.close(() => r()) : r()));
  await removeTempDir(pki?.dir);
});

const recordFile = (a: TestAgent, m: string, c: string) => join(a.workDir, "records", m, `${c}.json`);
const ids = (pod: string, container = "app") => ({ namespace: "default", pod, container });

describe("checkpoint with a migration key", () => {
  it("a repeated and a concurrent checkpoint return the first result with one kubelet call", async () => {
    kubeletCalls = [];
    kubeletDelayMs = 300;
    const req = { migration: "m-ckpt", ...ids("web-0"), timeoutSeconds: 30 };
    const [a, b] = await Promise.all([
      controller.checkpoint(source.url, req),
      controller.checkpoint(source.url, req),
    ]);
    kubeletDelayMs = 0;
    const c = await controller.checkpoint(source.url, req);
    expect(kubeletCalls).toEqual(["default/web-0/app"]);
    expect(b).toEqual(a);
    expect(c.archive).toBe(a.archive);
    expect(c.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(c.digest).toBe(a.digest);
    expect(c.size).toBeGreaterThanOrEqual(256 * 1024);

    const rec = await controller.lookupCheckpoint(source.url, "m-ckpt", "app");
    expect(rec).toMatchObject({
      state: "Done",
      archive: a.archive,
      digest: a.digest,
      size: a.size,
      pod: "web-0",
    });
    expect(statSync(recordFile(source, "m-ckpt", "app")).mode & 0o777).toBe(0o600);
    expect(statSync(join(source.workDir, "records", "m-ckpt")).mode & 0o777).toBe(0o700);
    expect(await controller.lookupCheckpoint(source.url, "m-ckpt", "other")).toBeUndefined();
    expect(await controller.lookupCheckpoint(source.url, "m-none", "app")).toBeUndefined();
  });

  it("the same migration and container of another pod is refused", async () => {
    await expect(
      controller.checkpoint(source.url, { migration: "m-ckpt", ...ids("web-9") }),
    ).rejects.toMatchObject({ reason: "Conflict" });
  });

  it("lookup and release need the checkpoint right; bad names are 400", async () => {
    await expect(agentCaller.lookupCheckpoint(source.url, "m-ckpt", "app")).rejects.toMatchObject({
      reason: "Forbidden",
    });
    await expect(agentCaller.releaseCheckpoints(source.url, "m-ckpt")).rejects.toMatchObject({
      reason: "Forbidden",
    });
    await expect(controller.lookupCheckpoint(source.url, "Bad_Name", "app")).rejects.toMatchObject({
      reason: "BadRequest",
    });
    await expect(controller.lookupCheckpoint(source.url, "m", "A_B")).rejects.toMatchObject({
      reason: "BadRequest",
    });
  });

  it("without a key the checkpoint is made each time and nothing is recorded", async () => {
    kubeletCalls = [];
    const req = ids("web-1");
    const a = await controller.checkpoint(source.url, req);
    const b = await controller.checkpoint(source.url, req);
    expect(kubeletCalls).toHaveLength(2);
    expect(a.archive).not.toBe(b.archive);
    expect(a.digest).toBeUndefined();
  });

  it("a Pending record left by a restarted agent adopts the archive the kubelet wrote", async () => {
    const pending: CheckpointRecord = {
      migration: "m-pending",
      ...ids("web-2"),
      state: "Pending",
      createdAt: new Date(Date.now() - 1000).toISOString(),
    };
    await source.agent.records.put(pending);
    const name = "checkpoint-web-2_default-app-2025-02-01T00:00:00Z.tar";
    await writeFakeCheckpointArchive(join(source.checkpointsDir, name), { size: 4096, containerName: "app" });
    kubeletCalls = [];
    const rec = await controller.lookupCheckpoint(source.url, "m-pending", "app");
    expect(rec).toMatchObject({ state: "Done", archive: name });
    const again = await controller.checkpoint(source.url, { migration: "m-pending", ...ids("web-2") });
    expect(again.archive).toBe(name);
    expect(kubeletCalls).toEqual([]);

    // Pending, no archive, within its timeout: not known yet (the record stays Pending).
    await source.agent.records.put({
      ...pending,
      migration: "m-pending2",
      pod: "web-3",
      createdAt: new Date().toISOString(),
    });
    expect(await controller.lookupCheckpoint(source.url, "m-pending2", "app")).toMatchObject({
      state: "Pending",
    });
    await expect(
      controller.checkpoint(source.url, { migration: "m-pending2", ...ids("web-3") }),
    ).rejects.toMatchObject({ reason: "Conflict" });
    // Long past its timeout without an archive: nothing was made.
    await source.agent.records.put({
      ...pending,
      migration: "m-pending2",
      pod: "web-3",
      timeoutSeconds: 1,
      createdAt: new Date(Date.now() - 120_000).toISOString(),
    });
    expect(await controller.lookupCheckpoint(source.url, "m-pending2", "app")).toBeUndefined();
  });
});

describe("send of a recorded checkpoint", () => {
  it("direct: the archive leaves the node once sent; a repeated send returns the recorded result", async () => {
    const ck = await controller.checkpoint(source.url, { migration: "m-direct", ...ids("web-4") });
    const image = "localhost/ms2m/default-web-4-app:mdirect";
    const req = {
      migration: "m-direct",
      ...ids("web-4"),
      archive: ck.archive,
      destination: { type: "agent" as const, url: target.url, image },
    };
    const archivePath = join(source.checkpointsDir, ck.archive);
    const copy = `${archivePath}.copy`;
    copyFileSync(archivePath, copy);
    const first = await controller.send(source.url, req);
    expect(first.digest).toBe(ck.digest);
    expect(existsSync(archivePath)).toBe(false); // removed as soon as it was transferred
    const again = await controller.send(source.url, req);
    expect(again).toEqual(first); // recorded, not sent again
    // The target's agent restarted (a new pod IP): the image is on its node, the result stands.
    const moved = await controller.send(source.url, {
      ...req,
      destination: { ...req.destination, url: target.url.replace("127.0.0.2", "localhost") },
    });
    expect(moved).toEqual(first);

    // The answer was lost *and* the source never recorded it (crash between load and record,
    // so the archive is still there): the archive is sent again and the target accepts an
    // image it already has; then it is removed.
    renameSync(copy, archivePath);
    const rec = (await source.agent.records.get("m-direct", "app"))!;
    await source.agent.records.put({ ...rec, sends: [] });
    const resent = await controller.send(source.url, req);
    expect(resent.digest).toBe(first.digest);
    expect(resent.seconds).not.toBe(first.seconds);
    expect(existsSync(archivePath)).toBe(false);
    const manifest = (await storedManifest(target.store, image)) as { layers: { digest: string }[] };
    expect(manifest.layers[0]!.digest).toBe(first.digest);

    const released = await controller.releaseCheckpoints(source.url, "m-direct");
    expect(released).toMatchObject({ records: 1, archives: 0, registryImages: [] });
    expect(existsSync(join(source.workDir, "records", "m-direct"))).toBe(false);
    expect(await controller.releaseCheckpoints(source.url, "m-direct")).toMatchObject({
      records: 0,
      archives: 0,
    });
    await expect(controller.send(source.url, req)).rejects.toMatchObject({ reason: "NotFound" });

    // The target recorded the image it received and loaded: its release removes it (rollback).
    expect(existsSync(join(target.workDir, "records", "m-direct", "loaded", "app.json"))).toBe(true);
    const onTarget = await controller.releaseCheckpoints(target.url, "m-direct");
    expect(onTarget).toMatchObject({ records: 0, archives: 0, loadedImages: [{ image, deleted: true }] });
    expect(await storedManifest(target.store, image)).toBeNull();
    expect(existsSync(join(target.workDir, "records", "m-direct"))).toBe(false);
    expect((await controller.releaseCheckpoints(target.url, "m-direct")).loadedImages).toEqual([]);
  });

  it("direct: a completed migration's release keeps the loaded image on the target, drops the record", async () => {
    const ck = await controller.checkpoint(source.url, { migration: "m-keep", ...ids("web-6") });
    const image = "localhost/ms2m/default-web-6-app:mkeep";
    await controller.send(source.url, {
      migration: "m-keep",
      ...ids("web-6"),
      archive: ck.archive,
      destination: { type: "agent" as const, url: target.url, image },
    });
    await controller.releaseCheckpoints(source.url, "m-keep");
    const kept = await controller.releaseCheckpoints(target.url, "m-keep", undefined, {
      keepLoadedImages: true,
    });
    expect(kept.loadedImages).toMatchObject([{ image, deleted: false }]);
    expect(kept.loadedImages![0]!.message).toMatch(/kept/);
    expect(await storedManifest(target.store, image)).not.toBeNull();
    expect(existsSync(join(target.workDir, "records", "m-keep"))).toBe(false);
    // Nothing left for the expiry sweep to remove later.
    expect(await target.agent.sweepExpired(Date.now() + 365 * 86_400_000)).toEqual([]);
    expect(await storedManifest(target.store, image)).not.toBeNull();
  });

  it("registry: repeated send once; the release deletes the pushed image by digest", async () => {
    const ck = await controller.checkpoint(source.url, { migration: "m-reg", ...ids("web-5") });
    const remote = `${registry.host}/ms2m/checkpoints:web-5-mreg`;
    const req = {
      migration: "m-reg",
      ...ids("web-5"),
      archive: ck.archive,
      destination: { type: "registry" as const, image: remote },
    };
    const first = await controller.send(source.url, req);
    expect(await controller.send(source.url, req)).toEqual(first);
    const manifestUrl = `http://${registry.host}/v2/ms2m/checkpoints/manifests/web-5-mreg`;
    const accept = { accept: "application/vnd.oci.image.manifest.v1+json" };
    expect((await fetch(manifestUrl, { headers: accept })).status).toBe(200);
    // The target agent pulls it into its store (recorded for the release).
    (target.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
    const local = "localhost/ms2m/default-web-5-app:mreg";
    await controller.pull(target.url, { migration: "m-reg", source: remote, image: local });
    expect(await storedManifest(target.store, local)).not.toBeNull();
    const released = await controller.releaseCheckpoints(source.url, "m-reg");
    expect(released.registryImages).toEqual([{ image: remote, deleted: true }]);
    expect((await controller.releaseCheckpoints(target.url, "m-reg")).loadedImages).toEqual([
      { image: local, deleted: true },
    ]);
    expect(await storedManifest(target.store, local)).toBeNull();
    expect((await fetch(manifestUrl, { headers: accept })).status).toBe(404);
    expect(existsSync(join(source.checkpointsDir, ck.archive))).toBe(false);
  });

  it("a registry that refuses deletes is reported, and the records and archive still go", async () => {
    // A registry with deletes disabled answers 405 UNSUPPORTED.
    const refusing = createHttpServer((req, res) => {
      res.statusCode = req.method === "DELETE" ? 405 : 404;
      res.end(JSON.stringify({ errors: [{ code: "UNSUPPORTED" }] }));
    });
    await new Promise<void>((r) => refusing.listen(0, "127.0.0.1", () => r()));
    const host = `127.0.0.1:${(refusing.address() as { port: number }).port}`;
    (source.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(host);
    try {
      const ck = await controller.checkpoint(source.url, { migration: "m-refuse", ...ids("web-6") });
      const rec = (await source.agent.records.get("m-refuse", "app"))!;
      const image = `${host}/ms2m/c:t`;
      await source.agent.records.put({
        ...rec,
        sends: [
          {
            destination: `registry ${image}`,
            state: "Done",
            registryImage: image,
            manifestDigest: `sha256:${"a".repeat(64)}`,
          },
        ],
      });
      const released = await controller.releaseCheckpoints(source.url, "m-refuse");
      expect(released.registryImages).toMatchObject([{ image, deleted: false }]);
      expect(released.registryImages[0]!.message).toContain("405");
      expect(released.archives).toBe(1);
      expect(existsSync(join(source.checkpointsDir, ck.archive))).toBe(false);
    } finally {
      await new Promise<void>((r) => refusing.close(() => r()));
    }
  });
});

describe("expiry sweep", () => {
  it("records, archives and images older than the TTL are removed; newer ones are kept", async () => {
    const old = await controller.checkpoint(source.url, { migration: "m-old", ...ids("web-7") });
    const fresh = await controller.checkpoint(source.url, { migration: "m-fresh", ...ids("web-8") });
    const oldRec = (await source.agent.records.get("m-old", "app"))!;
    const longAgo = new Date(Date.now() - 2 * 3600_000).toISOString();
    await source.agent.records.put({ ...oldRec, createdAt: longAgo, updatedAt: longAgo });
    const swept = await source.agent.sweepExpired();
    expect(swept).toContain("m-old");
    expect(swept).not.toContain("m-fresh");
    expect(existsSync(join(source.checkpointsDir, old.archive))).toBe(false);
    expect(existsSync(join(source.checkpointsDir, fresh.archive))).toBe(true);
    expect(readdirSync(join(source.workDir, "records"))).not.toContain("m-old");
    // Everything expires eventually.
    expect(await source.agent.sweepExpired(Date.now() + 2 * 3600_000)).toContain("m-fresh");
    expect(existsSync(join(source.checkpointsDir, fresh.archive))).toBe(false);
  });

  it("a short TTL is swept by the agent's own timer", async () => {
    const a = await startAgent(pki, {
      host: "127.0.0.1",
      env: {
        AGENT_CHECKPOINT_TTL_SECONDS: "1",
        AGENT_KUBELET_URL: kubeletUrl,
        AGENT_KUBELET_CA_FILE: pki.caFile,
        AGENT_KUBELET_TOKEN_FILE: join(pki.dir, "kubelet-token"),
      },
    });
    const k2 = kubeletFor(() => a.checkpointsDir);
    await new Promise<void>((r) => k2.listen(0, "127.0.0.1", () => r()));
    (a.agent.config as { AGENT_KUBELET_URL?: string }).AGENT_KUBELET_URL =
      `https://127.0.0.1:${(k2.address() as { port: number }).port}`;
    try {
      const ck = await controller.checkpoint(a.url, { migration: "m-ttl", ...ids("web-9") });
      expect(existsSync(join(a.checkpointsDir, ck.archive))).toBe(true);
      // The release removes the archive, then the records: wait for the whole sweep, not only
      // its first step, before looking the record up.
      const swept = () => !existsSync(join(a.agent.records.dir, "m-ttl"));
      const deadline = Date.now() + 5000;
      while (!swept() && Date.now() < deadline) await sleep(100);
      expect(existsSync(join(a.checkpointsDir, ck.archive))).toBe(false);
      expect(await controller.lookupCheckpoint(a.url, "m-ttl", "app")).toBeUndefined();
    } finally {
      await a.stop();
      await new Promise<void>((r) => k2.close(() => r()));
    }
  });
});
