// Registry migrations with spec.encryption on the simulated cluster (real control plane,
// agents from config/'s DaemonSet, real skopeo and containers-storage on the nodes, Debian's
// docker-registry): the image crosses the registry encrypted and is decrypted by the target
// node's agent; keys that are missing or do not match fail the migration in Pending, before
// anything is frozen, and leave the source running.
import { generateKeyPairSync } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { listStoredImages } from "../../../src/checkpoint/skopeo.ts";
import { replayQueueName } from "../../../src/protocol/replay.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";
import {
  checkpointCount,
  controllerTestEnv,
  createDeployment,
  createMigration,
  deleteMigration,
  finalAccounting,
  getMigration,
  isReady,
  migrationGone,
  queueExists,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";

vi.setConfig({ testTimeout: 150_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let registry: { stop(): Promise<void> } | undefined;
let registryDir: string;
let ns: string;

const pem = (namedCurve: string) =>
  generateKeyPairSync("ec", {
    namedCurve,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const KEYS = pem("prime256v1");
const OTHER = pem("prime256v1");
const ENCRYPTION = {
  publicKeySecretRef: { name: "ckpt-keys", key: "pub.pem" },
  privateKeySecretRef: { name: "ckpt-keys", key: "priv.pem" },
};

beforeAll(async () => {
  setup = await setupFile(env, "encryption");
  ns = setup.ns;
  registryDir = join(setup.work, "registry");
  registry = await startRegistry(env.hostIp, { dir: registryDir });
  const secret = (name: string, data: Record<string, string>) =>
    env.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, stringData: data } });
  await secret("ckpt-keys", { "pub.pem": KEYS.publicKey, "priv.pem": KEYS.privateKey });
  await secret("ckpt-mismatch", { "pub.pem": KEYS.publicKey, "priv.pem": OTHER.privateKey });
});

afterFile(async (failed) => {
  await registry?.stop();
  await setup?.teardown(failed);
});

/** Every file the registry stored (blobs and manifests, deleted images' blobs included). */
async function registryFiles(): Promise<Buffer[]> {
  const root = join(registryDir, "data");
  const out: Buffer[] = [];
  for (const p of (await readdir(root, { recursive: true }).catch(() => [])) as string[]) {
    if ((await stat(join(root, p))).isFile()) out.push(await readFile(join(root, p)));
  }
  return out;
}

async function failedIn(name: string): Promise<StatefulMigration> {
  return waitFor(
    `${name} Failed`,
    async () => {
      const m = await getMigration(env, ns, name);
      if (m?.status?.phase === "Completed") throw new Error(`${name} completed`);
      return m?.status?.phase === "Failed" ? m : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

describe("Registry with spec.encryption", () => {
  it("ShadowPod: completes with zero lost; the registry only ever held ciphertext; the target runs the decrypted image", async () => {
    const w = workloadNames(ns, "enc", setup.work);
    await createDeployment(env, ns, w, "node-a");
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const sourceName = source?.metadata?.name ?? "";
    const producer = new TestProducer(env, w, 50);
    await producer.start();
    await sleep(1_000);

    const name = "m-enc";
    await createMigration(env, ns, name, w, {
      sourcePod: sourceName,
      targetNode: "node-b",
      transferMode: "Registry",
      encryption: ENCRYPTION,
    });
    const m = await waitForCompletion(env, ns, name);
    expect(m.status?.transferMode).toBe("Registry");
    const image = m.status?.containers?.[0]?.checkpointImage ?? "";
    expect(image.startsWith(`${env.registry}/ms2m/checkpoints:`)).toBe(true);

    // The target pod runs the image the target's agent decrypted and loaded: never pulled.
    const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
    expect(target.spec?.nodeName).toBe("node-b");
    expect(target.spec?.containers[0]).toMatchObject({ image, imagePullPolicy: "Never" });
    expect(isReady(target)).toBe(true);
    expect(await listStoredImages(env.cluster.node("node-b").storage)).toContain(image);

    // The registry's storage (blobs outlive the deleted image): the encrypted layer, no archive.
    const files = await registryFiles();
    const manifests = files
      .map((f) => {
        try {
          return JSON.parse(f.toString("utf8")) as { layers?: { mediaType: string; size: number }[] };
        } catch {
          return undefined;
        }
      })
      .filter((x) => x?.layers);
    expect(manifests.length).toBeGreaterThan(0);
    for (const man of manifests)
      expect(man!.layers!.map((l) => l.mediaType)).toEqual([
        "application/vnd.oci.image.layer.v1.tar+encrypted",
      ]);
    const layerSize = manifests[0]!.layers![0]!.size;
    expect(files.some((f) => f.length === layerSize)).toBe(true);
    // CRI-O's checkpoint files by name, as tar headers would carry them: nowhere.
    for (const f of files) {
      for (const needle of ["config.dump", "spec.dump", "inventory.img", "pstree.img"])
        expect(f.includes(needle)).toBe(false);
    }

    await deleteMigration(env, ns, name);
    await migrationGone(env, ns, name);
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    console.log(
      "[accounting] ShadowPod Registry encrypted",
      JSON.stringify({ ...report, lost: report.lost.length }),
    );
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.published).toBeGreaterThan(50);
  });

  it.each([
    [
      "keys that do not match",
      {
        ...ENCRYPTION,
        publicKeySecretRef: { name: "ckpt-mismatch", key: "pub.pem" },
        privateKeySecretRef: { name: "ckpt-mismatch", key: "priv.pem" },
      },
      (ns: string) =>
        `encryption keys do not match: the private key in Secret ${ns}/ckpt-mismatch key priv.pem cannot decrypt ` +
        `what is encrypted to the public key in Secret ${ns}/ckpt-mismatch key pub.pem`,
    ],
    [
      "a missing Secret",
      { ...ENCRYPTION, privateKeySecretRef: { name: "no-such-secret", key: "priv.pem" } },
      (ns: string) =>
        `encryption private key: Secret ${ns}/no-such-secret not found or has no key "priv.pem"`,
    ],
  ])(
    "%s: Failed in Pending with the reason, rolled back, the source untouched, nothing left",
    async (label, encryption, message) => {
      const w = workloadNames(ns, `bad-${label.split(" ")[1]}`, setup.work);
      await createDeployment(env, ns, w, "node-a");
      const [source] = await waitForConsumers(env, ns, w.name, 1);
      const sourceName = source?.metadata?.name ?? "";
      const producer = new TestProducer(env, w, 40);
      await producer.start();
      await sleep(1_000);
      const imagesBefore = await listStoredImages(env.cluster.node("node-b").storage);

      const name = `m-${w.name}`;
      const created = await createMigration(env, ns, name, w, {
        sourcePod: sourceName,
        targetNode: "node-b",
        transferMode: "Registry",
        encryption,
      });
      const m = await failedIn(name);
      expect(m.status?.failure).toEqual({
        phase: "Pending",
        reason: "EncryptionKeysInvalid",
        message: message(ns),
      });
      expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
      expect(m.status?.phaseTimings?.map((t) => t.phase)).toEqual(["Pending"]);

      // Nothing frozen or sent: no checkpoint asked, no replay queue, no target pod, no image.
      expect(await checkpointCount(env, "node-a", ns, sourceName, "checkpoint started")).toBe(0);
      expect(await queueExists(replayQueueName(created.metadata.uid ?? ""))).toBe(false);
      const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` }))
        .items;
      expect(pods.map((p) => p.metadata?.name)).toEqual([sourceName]);
      expect(pods[0]!.metadata?.uid).toBe(source?.metadata?.uid);
      expect(pods[0]!.metadata?.labels).toEqual(source?.metadata?.labels);
      expect(isReady(pods[0]!)).toBe(true);
      expect(await listStoredImages(env.cluster.node("node-b").storage)).toEqual(imagesBefore);
      const tags = await fetch(`http://${env.registry}/v2/ms2m/checkpoints/tags/list`).then((r) =>
        r.status === 404 ? { tags: [] } : (r.json() as Promise<{ tags: string[] | null }>),
      );
      expect((tags.tags ?? []).filter((t) => t.includes((created.metadata.uid ?? "").slice(0, 8)))).toEqual(
        [],
      );

      await deleteMigration(env, ns, name);
      await migrationGone(env, ns, name);
      // Still consuming throughout: every confirmed message applied once, by the source alone.
      const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
      expect(report.lost).toEqual([]);
      expect(report.appliedTwice).toEqual([]);
      expect(report.ok).toBe(true);
    },
  );
});
