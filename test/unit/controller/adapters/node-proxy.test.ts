import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ms2mError } from "../../../../src/common/errors.ts";
import {
  NodeProxyCheckpointer,
  RoutingCheckpointer,
} from "../../../../src/controller/adapters/node-proxy.ts";
import type { CheckpointRequest } from "../../../../src/controller/ports.ts";
import { FakeCheckpointer } from "../fakes.ts";
import { selfSigned } from "../../../../tooling/agent-fixture.ts";
import { sleep } from "../../../../tooling/exec.ts";

const req: CheckpointRequest = {
  node: "node-a",
  namespace: "shop",
  pod: "web-0",
  container: "app",
  key: "uid-1/app",
  timeoutSeconds: 5,
};
const ARCHIVE = "/var/lib/kubelet/checkpoints/checkpoint-web-0_shop-app-2026-11-22T04:00:00Z.tar";

describe("NodeProxyCheckpointer (against a local HTTPS server standing in for the API server)", () => {
  let dir: string;
  let server: Server;
  let answer: { status: number; body: string; delayMs?: number } = { status: 200, body: "" };
  const seen: { method?: string; url?: string; auth?: string }[] = [];
  let kc: KubeConfig;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ms2m-np-"));
    const { certFile, keyFile } = selfSigned(dir, "server", "/CN=127.0.0.1", {
      days: 1,
      san: "IP:127.0.0.1",
    });
    const cert = readFileSync(certFile);
    server = createServer({ cert, key: readFileSync(keyFile) }, (r, res) => {
      seen.push({ method: r.method, url: r.url, auth: r.headers.authorization });
      const reply = () =>
        res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
      if (answer.delayMs) setTimeout(reply, answer.delayMs);
      else reply();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
          caData: cert.toString("base64"),
        },
      ],
      users: [{ name: "u", token: "controller-token" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("POSTs to the node proxy path with the controller's credentials and returns the one archive", async () => {
    answer = { status: 200, body: JSON.stringify({ items: [ARCHIVE] }) };
    expect(await new NodeProxyCheckpointer(kc).checkpoint(req)).toEqual({ path: ARCHIVE });
    expect(seen.at(-1)).toEqual({
      method: "POST",
      url: "/api/v1/nodes/node-a/proxy/checkpoint/shop/web-0/app?timeout=5",
      auth: "Bearer controller-token",
    });
  });

  it.each([
    ["two archives", { items: [ARCHIVE, ARCHIVE] }],
    ["outside the kubelet folder", { items: ["/etc/shadow"] }],
    ["another pod's archive", { items: [ARCHIVE.replace("web-0", "web-1")] }],
    [
      "a path escaping the folder",
      { items: ["/var/lib/kubelet/checkpoints/../x/checkpoint-web-0_shop-app-1.tar"] },
    ],
    ["no items", {}],
  ])("refuses an answer with %s", async (_, body) => {
    answer = { status: 200, body: JSON.stringify(body) };
    const err = await new NodeProxyCheckpointer(kc).checkpoint(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Ms2mError);
    expect(err).toMatchObject({ reason: "InternalError", retriable: false });
  });

  it.each([
    [403, "Forbidden", false, "node-proxy-fallback"],
    [401, "Unauthorized", false, "credentials"],
    [404, "NotFound", false, "ContainerCheckpoint"],
    [500, "InternalError", false, "CRIU"],
    [429, "TooManyRequests", true, ""],
    [503, "ServiceUnavailable", true, "HTTP 503"],
  ])("HTTP %i becomes %s (retriable: %s)", async (status, reason, retriable, says) => {
    answer = { status, body: "nope" };
    const err = (await new NodeProxyCheckpointer(kc).checkpoint(req).catch((e: unknown) => e)) as Ms2mError;
    expect(err).toMatchObject({ reason, retriable });
    expect(err.message).toContain(says);
  });

  it("a lost answer is an unknown outcome (retriable), and lookup never guesses", async () => {
    answer = { status: 200, body: "{}", delayMs: 3_000 };
    const cp = new NodeProxyCheckpointer(kc);
    // The client waits timeoutSeconds + 30 s; a destroyed connection stands for a lost answer.
    const pending = cp.checkpoint(req).catch((e: unknown) => e);
    await sleep(200);
    server.closeAllConnections();
    const err = (await pending) as Ms2mError;
    expect(err).toMatchObject({ reason: "ServiceUnavailable", retriable: true });
    expect(await cp.lookup()).toEqual({ state: "unknown" });
  });
});

describe("RoutingCheckpointer", () => {
  const make = (agentOn: Set<string>, other?: Error) => {
    const agent = new FakeCheckpointer();
    const proxy = new FakeCheckpointer();
    proxy.lookupAnswer = "unknown";
    const locator = {
      async urlFor(node: string) {
        if (other) throw other;
        if (!agentOn.has(node))
          throw new Ms2mError("ServiceUnavailable", `no ready ms2m-agent on node ${node}`);
        return "https://10.0.0.1:9443";
      },
    };
    return { agent, proxy, routing: new RoutingCheckpointer(agent, proxy, locator) };
  };

  it("routes through the agent where a ready one runs, otherwise through the node proxy", async () => {
    const { routing } = make(new Set(["node-a"]));
    expect(await routing.routeFor("node-a")).toBe("Agent");
    expect(await routing.routeFor("node-b")).toBe("NodeProxy");
  });

  it("does not guess the route when the agents cannot be listed", async () => {
    const { routing } = make(new Set(), new Ms2mError("Forbidden", "cannot list pods"));
    await expect(routing.routeFor("node-a")).rejects.toMatchObject({ reason: "Forbidden" });
  });

  it("checkpoints and looks up on the recorded route, whatever the agents do meanwhile", async () => {
    const { agent, proxy, routing } = make(new Set(["node-a"]));
    await routing.checkpoint({ ...req, via: "NodeProxy" });
    expect(proxy.requests).toHaveLength(1);
    expect(agent.requests).toHaveLength(0);
    // An agent that came up since then has no record: the proxy's "unknown" is the answer.
    expect(await routing.lookup({ ...req, via: "NodeProxy" })).toEqual({ state: "unknown" });
    await routing.checkpoint({ ...req, via: "Agent" });
    expect(agent.requests).toHaveLength(1);
    expect((await routing.lookup({ ...req, via: "Agent" })).state).toBe("done");
  });
});
