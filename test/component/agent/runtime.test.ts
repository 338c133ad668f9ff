import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClient } from "../../../src/transfer/client.ts";
import { TOKENS, makePki, startAgent, type Pki, type TestAgent } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";

// GET /v1/runtime on a real agent server (TLS, the authenticator, the route), with the node's
// /etc/crio and /etc/containerd stood in for by temp folders and a fake TokenReview/SAR reviewer
// (config/rbac's grants: the controller may `get` agents/runtime; an agent may not).
let pki: Pki;
let agent: TestAgent;
let etc: string;
let dispatcher: Agent;
let controller: AgentClient;

const crioDir = () => join(etc, "crio");
function writeCrio(name: string, text: string): void {
  mkdirSync(join(crioDir(), "crio.conf.d"), { recursive: true });
  writeFileSync(join(crioDir(), "crio.conf.d", name), text);
}

beforeAll(async () => {
  pki = makePki();
  etc = mkdtempSync(join(tmpdir(), "ms2m-etc-"));
  mkdirSync(join(etc, "crio"));
  mkdirSync(join(etc, "containerd"));
  agent = await startAgent(pki, {
    env: { AGENT_CRIO_CONFIG_DIR: join(etc, "crio"), AGENT_CONTAINERD_CONFIG_DIR: join(etc, "containerd") },
  });
  dispatcher = new Agent({ connect: { ca: pki.ca } });
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
});

afterAll(async () => {
  await controller?.close();
  await dispatcher?.close();
  await agent?.stop();
  rmSync(etc, { recursive: true, force: true });
  await removeTempDir(pki?.dir);
});

async function get(path: string, token?: string, method = "GET") {
  const res = await request(`${agent.url}${path}`, {
    method,
    dispatcher,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { code: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe("GET /v1/runtime", () => {
  it("reports CRI-O's checkpoint/restore settings from the mounted /etc/crio", async () => {
    writeCrio("10-crio.conf", '[crio.runtime]\ndefault_runtime = "runc"\nenable_criu_support = false\n');
    const report = await controller.runtime(agent.url, "cri-o");
    expect(report).toEqual({
      runtime: "cri-o",
      checkpoint: false,
      restore: false,
      source: "/etc/crio/crio.conf.d/10-crio.conf",
      detail: expect.stringContaining(
        "enable_criu_support = false in [crio.runtime] (/etc/crio/crio.conf.d/10-crio.conf)",
      ),
      settings: {
        enable_criu_support: {
          value: false,
          file: "/etc/crio/crio.conf.d/10-crio.conf",
          table: "[crio.runtime]",
        },
      },
    });
    // Read per request: a drop-in added later is seen (CRI-O itself needs a restart for it).
    writeCrio(
      "20-ms2m.conf",
      '[crio.runtime]\nenable_criu_support = true\n[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n',
    );
    const after = await controller.runtime(agent.url);
    expect(after).toMatchObject({ runtime: "cri-o", checkpoint: true, restore: true });
    expect(after.source).toBe("/etc/crio/crio.conf.d/10-crio.conf, /etc/crio/crio.conf.d/20-ms2m.conf");
  });

  it("malformed TOML: runtime known, capabilities unknown, the reason given", async () => {
    writeCrio("30-broken.conf", "[crio.runtime\nenable_criu_support = true\n");
    const report = await controller.runtime(agent.url, "cri-o");
    expect(report.checkpoint).toBeUndefined();
    expect(report.restore).toBeUndefined();
    expect(report.settings).toBeUndefined();
    expect(report.detail).toMatch(/^\/etc\/crio\/crio\.conf\.d\/30-broken\.conf is not valid TOML/);
    rmSync(join(crioDir(), "crio.conf.d", "30-broken.conf"));
  });

  it("authenticates and authorizes like every /v1 route: 401 without a token, 403 without get agents/runtime", async () => {
    const none = await get("/v1/runtime");
    expect(none.code).toBe(401);
    const agentToken = await get("/v1/runtime", TOKENS.agent);
    expect(agentToken.code).toBe(403);
    expect(agentToken.body).toMatchObject({
      kind: "Status",
      reason: "Forbidden",
      message: `system:serviceaccount:ms2m-system:ms2m-agent may not get agents/runtime (migration.ms2m.io) on node ${agent.agent.config.NODE_NAME}`,
    });
    expect((await get("/v1/runtime", TOKENS.noRights)).code).toBe(403);
    expect((await get("/v1/runtime", TOKENS.user)).code).toBe(403);
    // The fake reviewer grants the controller only `get` on agents/runtime: 200 means that was asked.
    expect((await get("/v1/runtime", TOKENS.controller)).code).toBe(200);
    // Read only; an unknown runtime name is refused (after authentication).
    expect((await get("/v1/runtime", TOKENS.controller, "POST")).code).toBe(405);
    expect((await get("/v1/runtime?runtime=docker", TOKENS.controller)).code).toBe(400);
    expect((await get("/v1/runtime?runtime=docker")).code).toBe(401);
  });

  it("counts requests under a fixed route label", async () => {
    const metrics = await (await request(`${agent.url}/metrics`, { dispatcher })).body.text();
    expect(metrics).toMatch(/ms2m_agent_http_requests_total\{route="runtime",code="200"\} \d+/);
    expect(metrics).toMatch(/ms2m_agent_http_requests_total\{route="runtime",code="403"\} \d+/);
  });
});
