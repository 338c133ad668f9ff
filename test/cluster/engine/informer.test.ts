import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as k8s from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import { ResilientInformer } from "../../../src/engine/informer.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import {
  ApiProxy,
  GROUP,
  PLURAL,
  VERSION,
  controllerKubeConfig,
  createNamespace,
  engineEnv,
  installApi,
  memoryLogger,
  randomSuffix,
} from "./env.ts";

// ResilientInformer against the real API server as the controller's ServiceAccount, through a
// TCP proxy that breaks or stalls its connections.
const env = engineEnv();
const NS = `engine-inf-${randomSuffix()}`;
let proxy: ApiProxy;
let informers: Array<ResilientInformer<KubernetesObject>> = [];

interface Seen {
  type: "add" | "update" | "delete";
  name: string;
  rv: string;
}

async function smInformer(opts: { inactivityMs?: number; direct?: boolean } = {}) {
  const kc = await controllerKubeConfig(env, opts.direct ? undefined : proxy.url);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const { log, lines } = memoryLogger();
  const seen: Seen[] = [];
  const inf = new ResilientInformer<KubernetesObject>({
    kc,
    log,
    path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    list: () => custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as never,
    onChange: (o, type) =>
      seen.push({ type, name: o.metadata?.name ?? "", rv: o.metadata?.resourceVersion ?? "" }),
    ...(opts.inactivityMs ? { inactivityMs: opts.inactivityMs } : {}),
  });
  informers.push(inf);
  return { inf, seen, lines };
}

const sm = (name: string) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: "StatefulMigration",
  metadata: { name, namespace: NS },
  spec: { sourcePod: `pod-${name}`, transferMode: "Direct" },
});

async function createSm(name: string): Promise<KubernetesObject> {
  return (await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: NS,
    body: sm(name),
  })) as KubernetesObject;
}

async function annotate(name: string, value: string): Promise<KubernetesObject> {
  return (await env.custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: NS,
      name,
      body: { metadata: { annotations: { n: value } } },
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  )) as KubernetesObject;
}

async function deleteSm(name: string): Promise<void> {
  await env.custom.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: NS,
    name,
  });
}

const cached = (inf: ResilientInformer<KubernetesObject>, name: string) =>
  inf.list().find((o) => o.metadata?.namespace === NS && o.metadata.name === name);

beforeAll(async () => {
  await installApi(env);
  await createNamespace(env, NS);
  proxy = await ApiProxy.start(env.cluster.server);
});

afterEach(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  informers = [];
  proxy.refusing = false;
});

afterAll(async () => {
  await proxy?.stop();
  await env.core.deleteNamespace({ name: NS }).catch(() => undefined);
});

describe("ResilientInformer on a real API server", () => {
  it("delivers add, update and delete of StatefulMigrations, and pod events", async () => {
    const { inf, seen } = await smInformer({ direct: true });
    await inf.start();
    expect(inf.synced).toBe(true);
    const name = `a-${randomSuffix()}`;
    const created = await createSm(name);
    const updated = await annotate(name, "1");
    await deleteSm(name);
    await waitFor(
      "add/update/delete",
      async () => (seen.filter((s) => s.name === name).length >= 3 ? true : undefined),
      { timeoutMs: 10000 },
    ).catch((err: unknown) => {
      throw new Error(`seen: ${JSON.stringify(seen)}`, { cause: err });
    });
    expect(seen.filter((s) => s.name === name)).toEqual([
      { type: "add", name, rv: created.metadata!.resourceVersion },
      { type: "update", name, rv: updated.metadata!.resourceVersion },
      expect.objectContaining({ type: "delete", name }),
    ]);

    const kc = await controllerKubeConfig(env);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pods: string[] = [];
    const podInf = new ResilientInformer<k8s.V1Pod>({
      kc,
      log: memoryLogger().log,
      path: "/api/v1/pods",
      list: () => core.listPodForAllNamespaces(),
      onChange: (p, type) => {
        if (p.metadata?.namespace === NS) pods.push(`${type} ${p.metadata.name}`);
      },
    });
    informers.push(podInf as unknown as ResilientInformer<KubernetesObject>);
    await podInf.start();
    await env.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: "p1" },
        spec: { containers: [{ name: "c", image: "x" }], nodeName: "nowhere" },
      },
    });
    await env.core.deleteNamespacedPod({ namespace: NS, name: "p1", gracePeriodSeconds: 0 });
    await waitFor("pod add and delete", async () => (pods.includes("delete p1") ? true : undefined), {
      timeoutMs: 10000,
    }).catch((err: unknown) => {
      throw new Error(`seen: ${JSON.stringify(pods)}`, { cause: err });
    });
    expect(pods[0]).toBe("add p1");
  });

  it("restarts after its connection is cut and catches up on everything it missed", async () => {
    const { inf, seen, lines } = await smInformer();
    const keep = `keep-${randomSuffix()}`;
    const gone = `gone-${randomSuffix()}`;
    await createSm(keep);
    await createSm(gone);
    await inf.start();
    expect(cached(inf, keep)).toBeDefined();

    // Cut the watch and keep the API server unreachable while things change.
    proxy.refusing = true;
    proxy.breakAll();
    let last: KubernetesObject | undefined;
    for (let i = 1; i <= 5; i++) last = await annotate(keep, String(i));
    await deleteSm(gone);
    const born = `born-${randomSuffix()}`;
    await createSm(born);
    await sleep(1500);
    expect(cached(inf, keep)?.metadata?.annotations?.n).toBeUndefined();
    proxy.refusing = false;

    const t0 = Date.now();
    await waitFor(
      "the cache to catch up",
      async () =>
        cached(inf, keep)?.metadata?.resourceVersion === last!.metadata!.resourceVersion &&
        cached(inf, born) &&
        !cached(inf, gone)
          ? true
          : undefined,
      { timeoutMs: 40_000, intervalMs: 50 },
    );
    console.log(`[engine] informer caught up ${Date.now() - t0} ms after the API server came back`);
    expect(lines.some((l) => l.msg === "watch failed, restarting")).toBe(true);
    // Level-triggered: the handler saw the final state of each object.
    expect(seen.filter((s) => s.name === keep).at(-1)?.rv).toBe(last!.metadata!.resourceVersion);
    expect(seen.some((s) => s.name === gone && s.type === "delete")).toBe(true);
    expect(seen.some((s) => s.name === born && s.type === "add")).toBe(true);

    // And it keeps working, with one watch, not a cascade of restarts.
    const restarts = lines.filter((l) => l.msg === "watch failed, restarting").length;
    const conns = proxy.connections;
    await sleep(4000);
    const again = await annotate(keep, "after");
    await waitFor("an event after recovery", async () =>
      cached(inf, keep)?.metadata?.resourceVersion === again.metadata!.resourceVersion ? true : undefined,
    );
    expect(lines.filter((l) => l.msg === "watch failed, restarting").length).toBe(restarts);
    expect(proxy.connections - conns).toBeLessThanOrEqual(1);
  });

  it("detects a stalled watch and restarts it (well before the 30 s client timeout)", async () => {
    const { inf, lines } = await smInformer({ inactivityMs: 1500 });
    const name = `stall-${randomSuffix()}`;
    await createSm(name);
    await inf.start();
    proxy.stallAll();
    const t0 = Date.now();
    const updated = await annotate(name, "stalled");
    await waitFor(
      "the update through a new watch",
      async () =>
        cached(inf, name)?.metadata?.resourceVersion === updated.metadata!.resourceVersion ? true : undefined,
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    const ms = Date.now() - t0;
    console.log(`[engine] stalled watch detected and the update received after ${ms} ms`);
    expect(ms).toBeLessThan(10_000);
    expect(lines.some((l) => l.msg === "watch quiet for too long, restarting")).toBe(true);

    // Restarting aborts the stalled watch: that abort is no failure to restart from again.
    await sleep(3000);
    expect(lines.filter((l) => l.msg === "watch failed, restarting")).toEqual([]);
  });

  it("is not synced until its first list succeeded", async () => {
    const { inf } = await smInformer();
    const name = `late-${randomSuffix()}`;
    await createSm(name);
    proxy.refusing = true;
    let started = false;
    const starting = inf.start().then(() => (started = true));
    await sleep(2500);
    expect(inf.synced).toBe(false);
    expect(started).toBe(false);
    proxy.refusing = false;
    await starting;
    expect(inf.synced).toBe(true);
    expect(cached(inf, name)).toBeDefined();
  });
});
