// PooledKubeConfig against a local HTTPS server standing in for kube-apiserver: API calls reuse
// kept-alive connections instead of one TLS handshake each (client-node's own KubeConfig makes a
// new undici Agent per request, which the second case shows, so this test can tell the two apart).
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PooledKubeConfig } from "../../../src/kube/config.ts";
import { makePki, type Pki } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";

describe("PooledKubeConfig", () => {
  let pki: Pki;
  let server: Server;
  let url: string;
  let connections = 0;
  const tokens: (string | undefined)[] = [];

  beforeAll(async () => {
    pki = makePki();
    server = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
      tokens.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "v1", kind: "NamespaceList", metadata: {}, items: [] }));
    });
    server.on("secureConnection", () => connections++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await removeTempDir(pki?.dir);
  });

  const load = (kc: KubeConfig, token: string) =>
    kc.loadFromOptions({
      clusters: [{ name: "local", server: url, caData: pki.ca.toString("base64") }],
      users: [{ name: "controller", token }],
      contexts: [{ name: "local", cluster: "local", user: "controller" }],
      currentContext: "local",
    });

  async function callsOpenConnections(kc: KubeConfig, calls: number): Promise<number> {
    const before = connections;
    const api = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < calls; i++) await api.listNamespace();
    // A few at once too: the pool opens what it needs and keeps them.
    await Promise.all(Array.from({ length: 5 }, () => api.listNamespace()));
    return connections - before;
  }

  it("reuses connections across API calls", async () => {
    const kc = new PooledKubeConfig();
    load(kc, "token-a");
    const opened = await callsOpenConnections(kc, 20);
    // One for the 20 sequential calls, at most one more per concurrent call.
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(6);
    await kc.closeConnections();
  });

  it("client-node's own KubeConfig opens a connection per call (what the pool avoids)", async () => {
    const kc = new KubeConfig();
    load(kc, "token-b");
    expect(await callsOpenConnections(kc, 20)).toBe(25);
  });

  it("still sends the current token with every request (a rotated token is picked up)", async () => {
    const kc = new PooledKubeConfig();
    load(kc, "token-1");
    const api = kc.makeApiClient(CoreV1Api);
    await api.listNamespace();
    // loadFromOptions keeps the user objects it was given; the header is built per request.
    const user = kc.getCurrentUser() as { token?: string };
    user.token = "token-2";
    tokens.length = 0;
    await api.listNamespace();
    expect(tokens).toEqual(["Bearer token-2"]);
    await kc.closeConnections();
  });
});
