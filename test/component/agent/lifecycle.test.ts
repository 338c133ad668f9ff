// The checkpoint lifecycle on real agents (fake kubelet writing archives as the kubelet does,
// real skopeo and containers-storage, a loopback docker-registry): every record and image says
// which migration and which incarnation of the workload it is of; the inventory the controller's
// sweep reads lists it; the agents refuse a checkpoint, send or pull that mixes incarnations.
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATION_UID_ANNOTATION, WORKLOAD_UID_ANNOTATION } from "../../../src/checkpoint/image.ts";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { AgentClient } from "../../../src/transfer/client.ts";
import {
  TOKENS,
  makePki,
  startAgent,
  startRegistry,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";

let pki: Pki;
let kubelet: Server;
let source: TestAgent;
let target: TestAgent;
let registry: TestRegistry;
let controller: AgentClient;
let stamp = 0;

const MIG = "6f1c2a9e-1d2b-4c3d-8e4f-000000000001";
const MIG2 = "6f1c2a9e-1d2b-4c3d-8e4f-000000000002";
const STS = { kind: "StatefulSet", name: "web", uid: "0a0b0c0d-0000-4000-8000-00000000aaaa" };
const STS_NEW = { ...STS, uid: "0a0b0c0d-0000-4000-8000-00000000bbbb" };
const ids = (pod: string) => ({ namespace: "default", pod, container: "app" });
const accept = { accept: "application/vnd.oci.image.manifest.v1+json" };

beforeAll(async () => {
  pki = makePki();
  writeFileSync(join(pki.dir, "kubelet-token"), "kubelet-token\n");
  kubelet = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
    void (async () => {
      const m = /^\/checkpoint\/([^/]+)\/([^/]+)\/([^/?]+)/.exec(req.url ?? "");
      if (req.method !== "POST" || !m) {
        res.statusCode = 403;
        res.end("forbidden");
        return;
      }
      const ts = new Date(Date.UTC(2025, 0, 1, 0, 0, stamp++)).toISOString().replace(".000", "");
      const name = `checkpoint-${m[2]}_${m[1]}-${m[3]}-${ts}.tar`;
      await writeFakeCheckpointArchive(join(source.checkpointsDir, name), {
        size: 64 * 1024,
        containerName: m[3]!,
      });
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ items: [`/var/lib/kubelet/checkpoints/${name}`] }));
    })();
  });
  await new Promise<void>((r) => kubelet.listen(0, "127.0.0.1", () => r()));
  const kubeletUrl = `https://127.0.0.1:${(kubelet.address() as { port: number }).port}`;
  [source, target, registry] = await Promise.all([
    startAgent(pki, {
      host: "127.0.0.1",
      env: {
        AGENT_KUBELET_URL: kubeletUrl,
        AGENT_KUBELET_CA_FILE: pki.caFile,
        AGENT_KUBELET_TOKEN_FILE: join(pki.dir, "kubelet-token"),
      },
    }),
    startAgent(pki, { host: "127.0.0.2" }),
    startRegistry(),
  ]);
  (source.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
  (target.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
});

afterAll(async () => {
  await controller?.close();
  await Promise.all([source?.stop(), target?.stop(), registry?.stop()]);
  await new Promise<void>((r) => (kubelet ? kubelet.close(() => r()) : r()));
  await removeTempDir(pki?.dir);
});

describe("records and images carry the migration and workload UIDs", () => {
  it("Direct: the record, the inventory, the target's loaded record and image annotations", async () => {
    const ck = await controller.checkpoint(source.url, { migration: MIG, ...ids("web-0"), workload: STS });
    expect(await controller.lookupCheckpoint(source.url, MIG, "app")).toMatchObject({ workload: STS });
    // A repeat for another incarnation of the workload is refused.
    await expect(
      controller.checkpoint(source.url, { migration: MIG, ...ids("web-0"), workload: STS_NEW }),
    ).rejects.toMatchObject({ reason: "Forbidden" });

    const image = "localhost/ms2m/default-web-0-app:lifecycle";
    const send = {
      migration: MIG,
      ...ids("web-0"),
      archive: ck.archive,
      destination: { type: "agent" as const, url: target.url, image },
    };
    // A send for another incarnation: refused before a byte moves; the archive stays.
    const refused = controller.send(source.url, { ...send, workload: STS_NEW });
    await expect(refused).rejects.toMatchObject({ reason: "Forbidden" });
    await expect(refused).rejects.toThrow(/deleted and recreated since the checkpoint/);
    expect(await storedManifest(target.store, image)).toBeNull();

    await controller.send(source.url, { ...send, workload: STS });
    const manifest = (await storedManifest(target.store, image)) as { annotations?: Record<string, string> };
    expect(manifest.annotations).toMatchObject({
      [MIGRATION_UID_ANNOTATION]: MIG,
      [WORKLOAD_UID_ANNOTATION]: STS.uid,
    });

    const src = await controller.inventory(source.url);
    expect(src.node).toBe("node-127-0-0-1");
    const onSource = src.migrations.find((m) => m.migration === MIG);
    expect(onSource).toMatchObject({
      workloadUids: [STS.uid],
      records: 1,
      archives: [ck.archive],
      loadedImages: [],
      busy: false,
    });
    expect(Date.now() - Date.parse(onSource!.newest)).toBeLessThan(60_000);
    const onTarget = (await controller.inventory(target.url)).migrations.find((m) => m.migration === MIG);
    expect(onTarget).toMatchObject({ workloadUids: [STS.uid], records: 0, loadedImages: [image] });

    // The release (what the sweep asks) empties both inventories.
    await controller.releaseCheckpoints(source.url, MIG);
    await controller.releaseCheckpoints(target.url, MIG);
    expect((await controller.inventory(source.url)).migrations.map((m) => m.migration)).not.toContain(MIG);
    expect((await controller.inventory(target.url)).migrations.map((m) => m.migration)).not.toContain(MIG);
    expect(await storedManifest(target.store, image)).toBeNull();
  });

  it("Registry: the pushed manifest is annotated; a pull for another incarnation or migration loads nothing", async () => {
    const ck = await controller.checkpoint(source.url, { migration: MIG2, ...ids("web-1"), workload: STS });
    const remote = `${registry.host}/ms2m/checkpoints:web-1-lifecycle`;
    // Sent without naming the workload: the recorded one goes on the image.
    await controller.send(source.url, {
      migration: MIG2,
      ...ids("web-1"),
      archive: ck.archive,
      destination: { type: "registry" as const, image: remote },
    });
    const res = await fetch(`http://${registry.host}/v2/ms2m/checkpoints/manifests/web-1-lifecycle`, {
      headers: accept,
    });
    const pushed = (await res.json()) as { annotations?: Record<string, string> };
    expect(pushed.annotations).toMatchObject({
      [MIGRATION_UID_ANNOTATION]: MIG2,
      [WORKLOAD_UID_ANNOTATION]: STS.uid,
    });
    const inv = (await controller.inventory(source.url)).migrations.find((m) => m.migration === MIG2);
    expect(inv?.registryImages).toEqual([remote]);

    const local = "localhost/ms2m/default-web-1-app:lifecycle";
    const otherIncarnation = controller.pull(target.url, {
      migration: MIG2,
      source: remote,
      image: local,
      workload: STS_NEW,
    });
    await expect(otherIncarnation).rejects.toMatchObject({ reason: "Forbidden" });
    await expect(otherIncarnation).rejects.toThrow(
      `is of another incarnation of StatefulSet web (uid ${STS.uid}, now ${STS_NEW.uid})`,
    );
    await expect(
      controller.pull(target.url, { migration: MIG, source: remote, image: local, workload: STS }),
    ).rejects.toThrow(`belongs to migration ${MIG2}, not ${MIG}`);
    expect(await storedManifest(target.store, local)).toBeNull();
    // Neither refused pull left a record behind.
    expect((await controller.inventory(target.url)).migrations.map((m) => m.migration)).toEqual([]);

    await controller.pull(target.url, { migration: MIG2, source: remote, image: local, workload: STS });
    const loaded = (await storedManifest(target.store, local)) as { annotations?: Record<string, string> };
    expect(loaded.annotations?.[WORKLOAD_UID_ANNOTATION]).toBe(STS.uid);
    const t = (await controller.inventory(target.url)).migrations.find((m) => m.migration === MIG2);
    expect(t).toMatchObject({ workloadUids: [STS.uid], loadedImages: [local] });

    const released = await controller.releaseCheckpoints(source.url, MIG2);
    expect(released.registryImages).toEqual([{ image: remote, deleted: true }]);
    await controller.releaseCheckpoints(target.url, MIG2);
    expect(
      (
        await fetch(`http://${registry.host}/v2/ms2m/checkpoints/manifests/web-1-lifecycle`, {
          headers: accept,
        })
      ).status,
    ).toBe(404);
  });

  it("the inventory needs the checkpoint right", async () => {
    const agent = new AgentClient({ ca: pki.ca, token: () => TOKENS.agent });
    try {
      await expect(agent.inventory(source.url)).rejects.toMatchObject({ reason: "Forbidden" });
    } finally {
      await agent.close();
    }
  });
});
