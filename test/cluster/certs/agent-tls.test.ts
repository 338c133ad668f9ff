import { mkdtempSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../../src/agent/config.ts";
import { AgentServer } from "../../../src/agent/server.ts";
import { createLogger } from "../../../src/common/logger.ts";
import { AgentTlsManager, DAY_MS, KubeSecretStore } from "../../../src/controller/certs/index.ts";
import { issueCa, parseBundle } from "../../../src/controller/certs/pki.ts";
import { AGENT_SERVER_NAME, AgentClient } from "../../../src/transfer/index.ts";
import { clusterContext, kubeConfigAs } from "../../harness/context.ts";
import { installMs2mApi } from "../../../tooling/stack/manifests.ts";
import { FakeReviewer, TOKENS, removeRoot } from "../../../tooling/agent-fixture.ts";

// The controller's certificate management against the real API server, acting as the
// ms2m-controller ServiceAccount with the RBAC from config/ (so the Role must allow exactly what
// it does), and the issued certificate served by a real AgentServer and verified by the real
// AgentClient the way the controller calls agents: by IP, checking the name ms2m-agent.
const NS = "ms2m-system";
const { kubectl, kubeConfig } = clusterContext();
let controllerKc: k8s.KubeConfig;
let core: k8s.CoreV1Api;

const readSecret = (name: string) => core.readNamespacedSecret({ name, namespace: NS });
const decode = (s: k8s.V1Secret, key: string) => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");

const SECRETS = ["ms2m-agent-tls", "ms2m-agent-ca"];
// Secrets other test files installed (agents already running on the shared cluster serve
// from them): put back exactly as found, or the agents and later controllers disagree.
const saved: k8s.V1Secret[] = [];

beforeAll(async () => {
  await installMs2mApi(kubectl);
  core = kubeConfig().makeApiClient(k8s.CoreV1Api);
  for (const name of SECRETS) {
    const existing = await readSecret(name).catch(() => undefined);
    if (existing) saved.push(existing);
  }
  // Start from nothing, as a fresh install does.
  await kubectl(["delete", "secret", "-n", NS, ...SECRETS, "--ignore-not-found"]);
  controllerKc = await kubeConfigAs(kubeConfig(), NS, "ms2m-controller");
});

afterAll(async () => {
  await kubectl(["delete", "secret", "-n", NS, ...SECRETS, "--ignore-not-found"]);
  for (const s of saved) {
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: {
          name: s.metadata!.name!,
          labels: s.metadata?.labels,
          annotations: s.metadata?.annotations,
        },
        type: s.type,
        data: s.data,
      },
    });
  }
});

describe("agent TLS Secret against the real API server", () => {
  it("issues both Secrets as the controller ServiceAccount, then keeps them", async () => {
    const mgr = new AgentTlsManager({ store: new KubeSecretStore(controllerKc, NS), namespace: NS });
    const first = await mgr.ensure();
    expect(first.changed).toEqual(expect.arrayContaining(["ca", "serving", "bundle"]));

    const tls = await readSecret("ms2m-agent-tls");
    expect(tls.type).toBe("kubernetes.io/tls");
    expect(Object.keys(tls.data ?? {}).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(decode(tls, "ca.crt")).toBe(first.caBundle);
    const ca = await readSecret("ms2m-agent-ca");
    expect(decode(ca, "tls.key")).toContain("PRIVATE KEY");
    const cert = new X509Certificate(decode(tls, "tls.crt"));
    expect(cert.checkIssued(new X509Certificate(decode(ca, "tls.crt")))).toBe(true);

    const again = await mgr.ensure();
    expect(again.changed).toEqual([]);
    expect((await readSecret("ms2m-agent-tls")).metadata?.resourceVersion).toBe(
      tls.metadata?.resourceVersion,
    );
  });

  it("two replicas writing concurrently converge (resourceVersion conflicts retried)", async () => {
    // Renewal is due for both at the same time: each reads, issues and writes.
    const at = Date.now() + 61 * DAY_MS;
    const mk = () =>
      new AgentTlsManager({ store: new KubeSecretStore(controllerKc, NS), namespace: NS, now: () => at });
    const results = await Promise.all([mk().ensure(), mk().ensure(), mk().ensure()]);
    expect(results.some((r) => r.changed.includes("serving"))).toBe(true);
    const tls = await readSecret("ms2m-agent-tls");
    const bundle = parseBundle(decode(tls, "ca.crt"));
    const cert = new X509Certificate(decode(tls, "tls.crt"));
    expect(bundle).toHaveLength(1);
    expect(cert.checkIssued(bundle[0]!) && cert.verify(bundle[0]!.publicKey)).toBe(true);
    expect(Date.parse(cert.validTo)).toBeGreaterThan(at + 89 * DAY_MS);
    // Back to "now": the certificate issued for the future is still valid, so it is kept;
    // a fresh one for this test run is made by deleting the Secret.
    await kubectl(["delete", "secret", "-n", NS, "ms2m-agent-tls"]);
    await new AgentTlsManager({ store: new KubeSecretStore(controllerKc, NS), namespace: NS }).ensure();
  });
});

describe("the issued certificate on a real AgentServer, verified by the real AgentClient", () => {
  let dir: string;
  let server: AgentServer;
  let url: string;
  let bundle: string;

  beforeAll(async () => {
    const tls = await readSecret("ms2m-agent-tls");
    dir = mkdtempSync(join(tmpdir(), "ms2m-agent-tls-"));
    for (const key of ["tls.crt", "tls.key", "ca.crt"])
      writeFileSync(join(dir, key), decode(tls, key), { mode: 0o600 });
    bundle = decode(tls, "ca.crt");
    const config = parseAgentConfig({
      NODE_NAME: "node-a",
      AGENT_PORT: "0",
      AGENT_BIND_ADDRESS: "127.0.0.1",
      AGENT_TLS_CERT_FILE: join(dir, "tls.crt"),
      AGENT_TLS_KEY_FILE: join(dir, "tls.key"),
      AGENT_TLS_CA_FILE: join(dir, "ca.crt"),
      AGENT_CHECKPOINTS_DIR: join(dir, "checkpoints"),
      AGENT_WORK_DIR: join(dir, "work"),
      AGENT_STORAGE_DRIVER: "vfs",
      AGENT_STORAGE_GRAPHROOT: join(dir, "storage"),
      AGENT_STORAGE_RUNROOT: join(dir, "run"),
      LOG_LEVEL: "silent",
    });
    server = new AgentServer(
      {
        config,
        reviewer: new FakeReviewer(),
        logger: createLogger("agent", { level: "silent" }),
        outboundToken: async () => TOKENS.agent,
      },
      { cert: decode(tls, "tls.crt"), key: decode(tls, "tls.key") },
    );
    url = `https://127.0.0.1:${await server.listen()}`;
  });

  afterAll(async () => {
    await server?.shutdown(1000);
    if (dir) await removeRoot(dir);
  });

  it("verifies by IP with servername ms2m-agent against ca.crt", async () => {
    const client = new AgentClient({
      ca: bundle,
      servername: AGENT_SERVER_NAME,
      token: () => TOKENS.controller,
    });
    try {
      expect(await client.ready(url)).toBe(true);
      // An authenticated command over the verified connection: authorized, archive unknown → 404.
      await expect(
        client.send(url, {
          migration: "m1",
          namespace: "default",
          pod: "consumer-0",
          container: "app",
          archive: "checkpoint-consumer-0_default-app-2026-11-22T01:00:00Z.tar",
          destination: { type: "agent", url: "https://127.0.0.1:1", image: "localhost/ms2m/m1-app:1" },
        }),
      ).rejects.toMatchObject({ reason: "NotFound" });
    } finally {
      await client.close();
    }
  });

  it("is refused without the servername (the IP is not a SAN) and with another CA", async () => {
    const byIp = new AgentClient({ ca: bundle, token: () => TOKENS.controller });
    try {
      expect(await byIp.ready(url)).toBe(false);
      const foreign = await issueCa("foreign", new Date(), DAY_MS);
      const wrongCa = new AgentClient({ ca: foreign.cert, servername: AGENT_SERVER_NAME, token: () => "x" });
      expect(await wrongCa.ready(url)).toBe(false);
      await wrongCa.close();
    } finally {
      await byIp.close();
    }
  });

  it("after a CA rotation, a client holding the new bundle verifies the re-issued certificate (updateCa)", async () => {
    // Rotate: a CA Secret the manager must replace (garbage), then the serving certificate moves
    // to the new CA once the propagation delay has passed.
    const admin = kubeConfig().makeApiClient(k8s.CoreV1Api);
    const caSecret = await readSecret("ms2m-agent-ca");
    await admin.replaceNamespacedSecret({
      name: "ms2m-agent-ca",
      namespace: NS,
      body: { ...caSecret, data: { "tls.crt": Buffer.from("junk").toString("base64"), "tls.key": "" } },
    });
    const client = new AgentClient({
      ca: bundle,
      servername: AGENT_SERVER_NAME,
      token: () => TOKENS.controller,
    });
    const mgr = new AgentTlsManager({
      store: new KubeSecretStore(controllerKc, NS),
      namespace: NS,
      caPropagationMs: 0,
      onBundle: (b) => client.updateCa(b),
    });
    try {
      const r1 = await mgr.ensure(); // new CA published next to the old one
      expect(r1.changed).toEqual(["ca", "bundle"]);
      expect(parseBundle(r1.caBundle)).toHaveLength(2);
      expect(await client.ready(url)).toBe(true); // old serving cert, new bundle
      const r2 = await mgr.ensure(); // serving certificate from the new CA
      expect(r2.changed).toEqual(["serving"]);
      const tls = await readSecret("ms2m-agent-tls");
      server.reloadTls({ cert: decode(tls, "tls.crt"), key: decode(tls, "tls.key") });
      expect(await client.ready(url)).toBe(true);
      // A client that only knows the old CA no longer verifies the agent.
      const stale = new AgentClient({ ca: bundle, servername: AGENT_SERVER_NAME, token: () => "x" });
      expect(await stale.ready(url)).toBe(false);
      await stale.close();
    } finally {
      await client.close();
    }
  });
});
