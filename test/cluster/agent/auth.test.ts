import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { parseAgentConfig } from "../../../src/agent/config.ts";
import { KubeReviewer } from "../../../src/agent/kube-reviewer.ts";
import { AgentServer } from "../../../src/agent/server.ts";
import { createLogger } from "../../../src/common/logger.ts";
import { clusterContext, kubeConfigAs, serviceAccountToken } from "../../harness/context.ts";
import { installMs2mApi } from "../../../tooling/stack/manifests.ts";
import { makePki, removeRoot, type Pki } from "../../../tooling/agent-fixture.ts";

// The agent authenticates callers against the real API server: TokenReview (audience
// ms2m-agent) and SubjectAccessReview on the virtual agents/* resources, with the RBAC from
// config/default. The agent's reviews run with the agent's own ServiceAccount token.
const { kubectl, kubeConfig } = clusterContext();

let pki: Pki;
let root: string;
let server: AgentServer;
let url: string;
let dispatcher: Agent;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  await installMs2mApi(kubectl);
  await kubectl(["create", "serviceaccount", "intruder", "-n", "default"]);
  const admin = kubeConfig();
  const audience = ["ms2m-agent"];
  tokens.controller = await serviceAccountToken(admin, "ms2m-system", "ms2m-controller", audience);
  tokens.agent = await serviceAccountToken(admin, "ms2m-system", "ms2m-agent", audience);
  tokens.intruder = await serviceAccountToken(admin, "default", "intruder", audience);
  tokens.controllerApiAudience = await serviceAccountToken(admin, "ms2m-system", "ms2m-controller");

  pki = makePki();
  root = mkdtempSync(join(tmpdir(), "ms2m-agent-auth-"));
  const config = parseAgentConfig({
    NODE_NAME: "node-a",
    AGENT_PORT: "0",
    AGENT_BIND_ADDRESS: "127.0.0.1",
    AGENT_TLS_CERT_FILE: pki.certFile,
    AGENT_TLS_KEY_FILE: pki.keyFile,
    AGENT_TLS_CA_FILE: pki.caFile,
    AGENT_CHECKPOINTS_DIR: join(root, "checkpoints"),
    AGENT_WORK_DIR: join(root, "work"),
    AGENT_STORAGE_DRIVER: "vfs",
    AGENT_STORAGE_GRAPHROOT: join(root, "storage"),
    AGENT_STORAGE_RUNROOT: join(root, "run"),
    AGENT_AUTH_CACHE_SECONDS: "0.001",
    LOG_LEVEL: "silent",
  });
  // The agent reviews callers with its own ServiceAccount's permissions.
  const reviewer = new KubeReviewer(await kubeConfigAs(admin, "ms2m-system", "ms2m-agent"));
  server = new AgentServer(
    {
      config,
      reviewer,
      logger: createLogger("agent", { level: "silent" }),
      outboundToken: async () => tokens.agent!,
    },
    { cert: pki.cert, key: pki.key },
  );
  url = `https://127.0.0.1:${await server.listen()}`;
  dispatcher = new Agent({ connect: { ca: pki.ca } });
});

afterAll(async () => {
  await server?.shutdown(1000);
  await dispatcher?.close();
  if (root) await removeRoot(root);
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

async function call(path: string, token: string | undefined, body: string, contentType = "application/json") {
  const res = await request(`${url}${path}`, {
    method: "POST",
    dispatcher,
    headers: { "content-type": contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text };
}

// A syntactically valid send whose archive does not exist: an authorized caller gets past
// authentication and authorization and is answered 404 (no such archive), not 401/403.
const send = () =>
  JSON.stringify({
    migration: "m1",
    namespace: "default",
    pod: "consumer-0",
    container: "app",
    archive: join(root, "checkpoints", "checkpoint-consumer-0_default-app-2026-11-22T01:00:00Z.tar"),
    destination: { type: "agent", url: "https://127.0.0.1:1", image: "localhost/ms2m/m1-app:1" },
  });

describe("agent authentication and authorization with the real API server", () => {
  it("lets the controller command a send", async () => {
    const res = await call("/v1/send", tokens.controller, send());
    expect([401, 403]).not.toContain(res.status);
    expect(res.status).toBe(404); // authorized, but the archive is not there
  });

  it("refuses an agent commanding a send (403)", async () => {
    const res = await call("/v1/send", tokens.agent, send());
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ kind: "Status", reason: "Forbidden" });
  });

  it("lets an agent push an archive, and refuses the controller doing so", async () => {
    const path = "/v1/archives?container=app&image=localhost/ms2m/m1-app:1";
    const byAgent = await call(path, tokens.agent, "not a tar", "application/x-tar");
    expect([401, 403]).not.toContain(byAgent.status);
    const byController = await call(path, tokens.controller, "not a tar", "application/x-tar");
    expect(byController.status).toBe(403);
  });

  it("refuses a valid token of a ServiceAccount without the right (403)", async () => {
    expect((await call("/v1/send", tokens.intruder, send())).status).toBe(403);
    expect((await call("/v1/checkpoint", tokens.intruder, "{}")).status).toBe(403);
  });

  it("refuses a token meant for the API server, not for agents (401)", async () => {
    expect((await call("/v1/send", tokens.controllerApiAudience, send())).status).toBe(401);
  });

  it("refuses no token and a forged token (401)", async () => {
    expect((await call("/v1/send", undefined, send())).status).toBe(401);
    const forged = tokens.controller!.slice(0, -4) + "AAAA";
    expect((await call("/v1/send", forged, send())).status).toBe(401);
  });
});
