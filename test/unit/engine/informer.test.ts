import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { createLogger } from "../../../src/common/logger.ts";
import { toMs2mError } from "../../../src/kube/errors.ts";
import { ResilientInformer } from "../../../src/engine/informer.ts";
import {
  listMetadata,
  PARTIAL_OBJECT_METADATA,
  PARTIAL_OBJECT_METADATA_LIST,
  slimMetadata,
} from "../../../src/kube/metadata.ts";
import { waitUntil } from "../../../tooling/exec.ts";

// ResilientInformer's Accept header and transform, and the metadata-only list, against a fake API
// server on loopback that records what it was asked and answers one list and one watch stream.
interface Asked {
  url: string;
  accept: string | undefined;
}

const pod = (name: string, rv: string) => ({
  kind: "PartialObjectMetadata",
  apiVersion: "meta.k8s.io/v1",
  metadata: {
    name,
    namespace: "ns",
    uid: `uid-${name}`,
    resourceVersion: rv,
    labels: { app: name },
    annotations: { big: "x".repeat(1000) },
    ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "rs-uid" }],
    managedFields: [{ manager: "kubelet", fieldsV1: { "f:status": {} } }],
  },
});

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server?.closeAllConnections();
  server = undefined;
});

async function fakeApi(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ kc: KubeConfig; asked: Asked[] }> {
  const asked: Asked[] = [];
  server = createServer((req, res) => {
    asked.push({ url: req.url ?? "", accept: req.headers.accept });
    handle(req, res);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { kc, asked };
}

describe("metadata-only lists", () => {
  it("asks for a PartialObjectMetadataList and returns the server's list", async () => {
    const { kc, asked } = await fakeApi((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "PartialObjectMetadataList",
          metadata: { resourceVersion: "7" },
          items: [pod("a", "5")],
        }),
      );
    });
    const list = await listMetadata(kc, "/api/v1/pods");
    expect(asked).toEqual([{ url: "/api/v1/pods", accept: PARTIAL_OBJECT_METADATA_LIST }]);
    expect(list.metadata?.resourceVersion).toBe("7");
    expect(list.items.map((o) => o.metadata?.name)).toEqual(["a"]);
  });

  it("reads an empty list (the server says items: null) as no items", async () => {
    const { kc } = await fakeApi((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "PartialObjectMetadataList",
          metadata: { resourceVersion: "3" },
          items: null,
        }),
      );
    });
    expect((await listMetadata(kc, "/apis/batch/v1/namespaces/x/jobs")).items).toEqual([]);
  });

  it("throws what the generated clients throw: the Status reason survives", async () => {
    const { kc } = await fakeApi((_req, res) => {
      res.writeHead(403, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ kind: "Status", reason: "Forbidden", message: "pods is forbidden", code: 403 }),
      );
    });
    const err = await listMetadata(kc, "/api/v1/pods").catch((e: unknown) => e);
    const m = toMs2mError(err);
    expect(m.reason).toBe("Forbidden");
    expect(m.message).toContain("pods is forbidden");
  });

  it("slimMetadata keeps names, uid, resourceVersion, labels, owners and the deletion mark only", () => {
    expect(slimMetadata(pod("a", "5"))).toEqual({
      kind: "PartialObjectMetadata",
      apiVersion: "meta.k8s.io/v1",
      metadata: {
        name: "a",
        namespace: "ns",
        uid: "uid-a",
        resourceVersion: "5",
        labels: { app: "a" },
        ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "rs-uid" }],
      },
    });
    const deleting = pod("b", "6");
    (deleting.metadata as Record<string, unknown>).deletionTimestamp = "2026-12-02T15:00:00Z";
    expect(slimMetadata(deleting).metadata).toMatchObject({ deletionTimestamp: "2026-12-02T15:00:00Z" });
    expect(slimMetadata(deleting).metadata).not.toHaveProperty("annotations");
    expect(slimMetadata(deleting).metadata).not.toHaveProperty("managedFields");
  });
});

describe("ResilientInformer with accept and transform", () => {
  it("watches with the Accept header and caches and delivers transformed objects", async () => {
    const { kc, asked } = await fakeApi((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      if (!req.url?.includes("watch=true")) {
        res.end(JSON.stringify({ metadata: { resourceVersion: "10" }, items: [pod("a", "5")] }));
        return;
      }
      // One update of a, one new b, a deleted; then the stream stays open.
      for (const [type, obj] of [
        ["MODIFIED", pod("a", "11")],
        ["ADDED", pod("b", "12")],
        ["DELETED", pod("a", "13")],
      ] as const)
        res.write(JSON.stringify({ type, object: obj }) + "\n");
    });
    const seen: { type: string; obj: KubernetesObject }[] = [];
    const inf = new ResilientInformer<KubernetesObject>({
      kc,
      log: createLogger("test", { level: "silent" }),
      path: "/api/v1/pods",
      list: () => listMetadata(kc, "/api/v1/pods"),
      accept: PARTIAL_OBJECT_METADATA,
      transform: slimMetadata,
      onChange: (obj, type) => seen.push({ type, obj }),
    });
    try {
      await inf.start();
      await waitUntil("4 events", () => seen.length === 4, { timeoutMs: 5_000, intervalMs: 20 });
      expect(seen.map((s) => `${s.type} ${s.obj.metadata?.name}@${s.obj.metadata?.resourceVersion}`)).toEqual(
        ["add a@5", "update a@11", "add b@12", "delete a@13"],
      );
      for (const { obj } of seen)
        expect(Object.keys(obj.metadata ?? {}).sort()).toEqual([
          "labels",
          "name",
          "namespace",
          "ownerReferences",
          "resourceVersion",
          "uid",
        ]);
      expect(inf.list()).toEqual([slimMetadata(pod("b", "12"))]);
      const watchReq = asked.find((a) => a.url.includes("watch=true"));
      expect(watchReq?.accept).toBe(PARTIAL_OBJECT_METADATA);
      expect(watchReq?.url).toContain("resourceVersion=10");
    } finally {
      await inf.stop();
    }
  });
});
