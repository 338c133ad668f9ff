// KubeRest against a local HTTP server standing in for kube-apiserver: what goes on the wire
// (method, path, query, headers, body) and how answers and failures come back. The real API
// server is exercised by every cluster test (the controller's adapters run on KubeRest).
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toMs2mError } from "../../../src/kube/errors.ts";
import { listMetadata, PARTIAL_OBJECT_METADATA_LIST } from "../../../src/kube/metadata.ts";
import { KubeRest, resourcePath } from "../../../src/kube/rest.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let kc: KubeConfig;
const seen: Seen[] = [];
/** The next answer: status and body. */
let answer: { status: number; body: string; headers?: Record<string, string> } = { status: 200, body: "{}" };

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(answer.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "s3cret" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const last = () => seen[seen.length - 1]!;

describe("resourcePath", () => {
  it("builds core, group, namespaced, cluster-scoped and subresource paths", () => {
    expect(resourcePath({ version: "v1", plural: "pods", namespace: "ns", name: "p" })).toBe(
      "/api/v1/namespaces/ns/pods/p",
    );
    expect(resourcePath({ version: "v1", plural: "nodes" })).toBe("/api/v1/nodes");
    expect(
      resourcePath({
        group: "migration.ms2m.io",
        version: "v1alpha1",
        plural: "statefulmigrations",
        namespace: "a",
        name: "m",
        subresource: "status",
      }),
    ).toBe("/apis/migration.ms2m.io/v1alpha1/namespaces/a/statefulmigrations/m/status");
  });

  it("escapes names so they cannot leave their segment", () => {
    expect(resourcePath({ version: "v1", plural: "pods", namespace: "ns", name: "../../nodes" })).toBe(
      "/api/v1/namespaces/ns/pods/..%2F..%2Fnodes",
    );
  });
});

describe("KubeRest", () => {
  it("GETs with the bearer token and a JSON Accept, and returns the parsed answer", async () => {
    answer = { status: 200, body: JSON.stringify({ kind: "Pod", metadata: { name: "p" } }) };
    const pod = await new KubeRest(kc).get<{ metadata: { name: string } }>("/api/v1/namespaces/ns/pods/p");
    expect(pod.metadata.name).toBe("p");
    expect(last().method).toBe("GET");
    expect(last().url).toBe("/api/v1/namespaces/ns/pods/p");
    expect(last().headers.authorization).toBe("Bearer s3cret");
    expect(last().headers.accept).toBe("application/json");
  });

  it("lists with a query and gives [] for `items: null`", async () => {
    answer = { status: 200, body: JSON.stringify({ kind: "PodList", items: null }) };
    const list = await new KubeRest(kc).list("/api/v1/pods", {
      fieldSelector: "spec.nodeName=a b",
      limit: 5,
    });
    expect(list.items).toEqual([]);
    const url = new URL(last().url, "http://x");
    expect(url.searchParams.get("fieldSelector")).toBe("spec.nodeName=a b");
    expect(url.searchParams.get("limit")).toBe("5");
  });

  it("sends writes as JSON with the field manager; patches with their content type", async () => {
    const rest = new KubeRest(kc, { fieldManager: "tester" });
    answer = { status: 201, body: "{}" };
    await rest.create("/api/v1/namespaces/ns/pods", { metadata: { name: "p" } });
    expect(last().method).toBe("POST");
    expect(last().headers["content-type"]).toBe("application/json");
    expect(JSON.parse(last().body)).toEqual({ metadata: { name: "p" } });
    expect(new URL(last().url, "http://x").searchParams.get("fieldManager")).toBe("tester");

    answer = { status: 200, body: "{}" };
    await rest.replace("/x/status", { status: {} });
    expect(last().method).toBe("PUT");

    const types = {
      json: "application/json-patch+json",
      merge: "application/merge-patch+json",
      strategic: "application/strategic-merge-patch+json",
      apply: "application/apply-patch+yaml",
    } as const;
    for (const [type, contentType] of Object.entries(types)) {
      await rest.patch("/x", type as keyof typeof types, [{ op: "remove", path: "/a" }]);
      expect(last().method).toBe("PATCH");
      expect(last().headers["content-type"]).toBe(contentType);
    }
  });

  it("DELETEs with query and DeleteOptions body", async () => {
    answer = { status: 200, body: JSON.stringify({ kind: "Status", status: "Success" }) };
    await new KubeRest(kc).delete(
      "/api/v1/namespaces/ns/pods/p",
      { gracePeriodSeconds: 1 },
      {
        preconditions: { uid: "u-1" },
      },
    );
    expect(last().method).toBe("DELETE");
    expect(new URL(last().url, "http://x").searchParams.get("gracePeriodSeconds")).toBe("1");
    expect(JSON.parse(last().body)).toEqual({ preconditions: { uid: "u-1" } });
  });

  it("throws the API server's Status: reason and message reach Ms2mError", async () => {
    answer = {
      status: 409,
      body: JSON.stringify({
        kind: "Status",
        status: "Failure",
        reason: "Conflict",
        code: 409,
        message: 'Operation cannot be fulfilled on pods "p": the object has been modified',
      }),
    };
    const err = await new KubeRest(kc).replace("/api/v1/namespaces/ns/pods/p", {}).catch((e: unknown) => e);
    const e = toMs2mError(err, "update pod");
    expect(e.reason).toBe("Conflict");
    expect(e.message).toBe(
      'update pod: Operation cannot be fulfilled on pods "p": the object has been modified',
    );
  });

  it("maps an error without a Status body by its HTTP code", async () => {
    answer = { status: 404, body: "404 page not found" };
    const err = await new KubeRest(kc).get("/nope").catch((e: unknown) => e);
    expect(toMs2mError(err).reason).toBe("NotFound");
  });

  it("a refused connection is a retriable ServiceUnavailable", async () => {
    const dead = new KubeConfig();
    dead.loadFromOptions({
      clusters: [{ name: "c", server: "http://127.0.0.1:1" }],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const err = await new KubeRest(dead).get("/api").catch((e: unknown) => e);
    expect(toMs2mError(err).reason).toBe("ServiceUnavailable");
  });
});

describe("listMetadata", () => {
  it("asks for PartialObjectMetadataList", async () => {
    answer = { status: 200, body: JSON.stringify({ kind: "PartialObjectMetadataList", items: null }) };
    const list = await listMetadata(kc, "/api/v1/pods");
    expect(list.items).toEqual([]);
    expect(last().headers.accept).toBe(PARTIAL_OBJECT_METADATA_LIST);
  });
});
