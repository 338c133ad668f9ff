import { X509Certificate, createPrivateKey } from "node:crypto";
import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { AgentTlsManager, DAY_MS, PUBLISHED_ANNOTATION } from "../../../../src/controller/certs/index.ts";
import { issueCa, parseBundle } from "../../../../src/controller/certs/pki.ts";
import { FakeSecretStore } from "./fake-store.ts";

const T0 = Date.parse("2026-03-01T00:00:00Z");
const NAMES = [
  "ms2m-agent",
  "ms2m-agent.ms2m-system",
  "ms2m-agent.ms2m-system.svc",
  "ms2m-agent.ms2m-system.svc.cluster.local",
];

function setup(options: { log?: pino.Logger } = {}) {
  const store = new FakeSecretStore();
  const clock = { now: T0 };
  const mgr = new AgentTlsManager({
    store,
    namespace: "ms2m-system",
    now: () => clock.now,
    ...(options.log ? { log: options.log } : {}),
  });
  const tls = () => store.secrets.get("ms2m-agent-tls")!;
  const ca = () => store.secrets.get("ms2m-agent-ca")!;
  const serving = () => new X509Certificate(tls().data["tls.crt"]!);
  const bundle = () => parseBundle(tls().data["ca.crt"]);
  const signingCa = () => new X509Certificate(ca().data["tls.crt"]!);
  return { store, clock, mgr, tls, ca, serving, bundle, signingCa };
}

/** The serving certificate as a TLS client would check it: chain to one bundle CA, name, dates. */
function verifies(cert: X509Certificate, bundle: X509Certificate[], at: number): boolean {
  return (
    bundle.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)) &&
    cert.checkHost("ms2m-agent") === "ms2m-agent" &&
    Date.parse(cert.validFrom) <= at &&
    at < Date.parse(cert.validTo)
  );
}

describe("AgentTlsManager", () => {
  it("issues a CA and a serving certificate into empty Secrets", async () => {
    const t = setup();
    const res = await t.mgr.ensure();
    expect(res.changed).toEqual(expect.arrayContaining(["ca", "serving", "bundle"]));

    const ca = t.signingCa();
    expect(ca.ca).toBe(true);
    expect(ca.subject).toContain("CN=ms2m-agent-ca");
    expect(ca.checkPrivateKey(createPrivateKey(t.ca().data["tls.key"]!))).toBe(true);
    expect(Date.parse(ca.validTo) - T0).toBe(365 * DAY_MS);
    expect(t.ca().type).toBe("kubernetes.io/tls");

    const tls = t.tls();
    expect(Object.keys(tls.data).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(tls.type).toBe("kubernetes.io/tls");
    expect(tls.labels).toMatchObject({ "app.kubernetes.io/managed-by": "ms2m-controller" });
    expect(tls.data["tls.key"]).toContain("BEGIN PRIVATE KEY");
    expect(tls.data["ca.crt"]).not.toContain("PRIVATE KEY"); // the CA key is never in the agents' Secret
    expect(res.caBundle).toBe(tls.data["ca.crt"]);

    const cert = t.serving();
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe(NAMES.map((n) => `DNS:${n}`).join(", "));
    for (const n of NAMES) expect(cert.checkHost(n)).toBe(n);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(createPrivateKey(tls.data["tls.key"]!))).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe("ec");
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]); // serverAuth
    expect(Date.parse(cert.validTo) - T0).toBe(90 * DAY_MS);
    expect(Date.parse(cert.validFrom)).toBeLessThan(T0); // backdated for clock skew
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([ca.fingerprint256]);
  });

  it("keeps valid certificates: no write", async () => {
    const t = setup();
    await t.mgr.ensure();
    const before = { tls: t.tls(), ca: t.ca(), writes: t.store.writes };
    t.clock.now += 30 * DAY_MS;
    const res = await t.mgr.ensure();
    expect(res.changed).toEqual([]);
    expect(t.store.writes).toBe(before.writes);
    expect(t.tls()).toEqual(before.tls);
    expect(t.ca()).toEqual(before.ca);
  });

  it("renews the serving certificate when a third of its lifetime is left", async () => {
    const t = setup();
    await t.mgr.ensure();
    const first = t.serving();
    const caBefore = t.ca();
    t.clock.now += 59 * DAY_MS; // 31 days left of 90: kept
    expect((await t.mgr.ensure()).changed).toEqual([]);
    t.clock.now += 2 * DAY_MS; // 29 days left: renewed
    const res = await t.mgr.ensure();
    expect(res.changed).toEqual(["serving"]);
    const second = t.serving();
    expect(second.serialNumber).not.toBe(first.serialNumber);
    expect(second.publicKey.equals(first.publicKey)).toBe(false); // new key too
    expect(Date.parse(second.validTo) - t.clock.now).toBe(90 * DAY_MS);
    expect(t.ca()).toEqual(caBefore);
    expect(verifies(second, t.bundle(), t.clock.now)).toBe(true);
  });

  it("rotates the CA with an overlap: old CA stays in ca.crt until it expires", async () => {
    const t = setup();
    await t.mgr.ensure();
    const oldCa = t.signingCa();
    // Run daily as the leader would (hourly), until the CA is within its renewal window.
    let rotatedAt = 0;
    for (let day = 1; day <= 250 && !rotatedAt; day++) {
      t.clock.now = T0 + day * DAY_MS;
      const before = t.bundle();
      const res = await t.mgr.ensure();
      if (res.changed.includes("ca")) rotatedAt = t.clock.now;
      // Every pass: the published serving certificate verifies against the bundle before AND after.
      expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);
      expect(
        before.length === 0 || verifies(t.serving(), before, t.clock.now) || res.changed.includes("ca"),
      ).toBe(true);
    }
    // 1/3 of 365 days left → rotated on day 244.
    expect(rotatedAt).toBe(T0 + 244 * DAY_MS);
    const newCa = t.signingCa();
    expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256);
    // Phase 1: the new CA is published next to the old one; the serving cert is still the old CA's.
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([newCa.fingerprint256, oldCa.fingerprint256]);
    expect(t.serving().checkIssued(oldCa)).toBe(true);
    const publishedBundle = t.bundle();

    // Phase 2: after the propagation delay the serving cert moves to the new CA; clients that
    // only have the bundle from phase 1 verify it.
    t.clock.now += 5 * 60_000;
    expect((await t.mgr.ensure()).changed).toEqual([]);
    t.clock.now += 6 * 60_000;
    const res = await t.mgr.ensure();
    expect(res.changed).toEqual(["serving"]);
    expect(res.reasons).toContain("serving certificate from the previous CA");
    expect(t.serving().checkIssued(newCa)).toBe(true);
    expect(verifies(t.serving(), publishedBundle, t.clock.now)).toBe(true);
    expect(t.bundle()).toHaveLength(2);

    // Phase 3: once the old CA expires it leaves the bundle.
    t.clock.now = Date.parse(oldCa.validTo) - 60_000;
    await t.mgr.ensure();
    expect(t.bundle()).toHaveLength(2);
    t.clock.now = Date.parse(oldCa.validTo) + 60_000;
    await t.mgr.ensure();
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([newCa.fingerprint256]);
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);
  });

  it("replaces garbage in either Secret", async () => {
    const t = setup();
    await t.mgr.ensure();
    const oldCa = t.signingCa();
    t.store.put("ms2m-agent-tls", {
      ...t.tls(),
      data: {
        "tls.crt": "garbage",
        "tls.key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        x: "y",
      },
    });
    let res = await t.mgr.ensure();
    expect(res.changed).toContain("serving");
    expect(Object.keys(t.tls().data).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);
    expect(t.signingCa().fingerprint256).toBe(oldCa.fingerprint256);

    // A broken CA Secret: a new CA. The serving certificate of the lost CA is still valid and
    // trusted, so it is kept while the new CA propagates (same overlap as a rotation), then moves.
    t.store.put("ms2m-agent-ca", { ...t.ca(), data: { "tls.crt": "junk", "tls.key": "junk" } });
    res = await t.mgr.ensure();
    expect(res.changed).toEqual(["ca", "bundle"]);
    expect(res.reasons).toContain("CA missing or invalid");
    const newCa = t.signingCa();
    expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256);
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([newCa.fingerprint256, oldCa.fingerprint256]);
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);
    t.clock.now += 11 * 60_000;
    expect((await t.mgr.ensure()).changed).toEqual(["serving"]);
    expect(t.serving().checkIssued(newCa)).toBe(true);

    // Both Secrets garbage at once: everything is issued anew at once.
    t.store.put("ms2m-agent-ca", { ...t.ca(), data: { "tls.crt": "junk", "tls.key": "junk" } });
    t.store.put("ms2m-agent-tls", { ...t.tls(), data: { "tls.crt": "a", "tls.key": "b", "ca.crt": "c" } });
    res = await t.mgr.ensure();
    expect(res.changed).toEqual(expect.arrayContaining(["ca", "serving", "bundle"]));
    const newest = t.signingCa();
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([newest.fingerprint256]);
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);

    // A bundle with junk between certificates, and a non-CA certificate in it.
    t.store.put("ms2m-agent-tls", {
      ...t.tls(),
      data: { ...t.tls().data, "ca.crt": `junk\n${t.tls().data["tls.crt"]}\nmore junk` },
    });
    await t.mgr.ensure();
    expect(t.bundle().map((c) => c.fingerprint256)).toEqual([newest.fingerprint256]);
  });

  it("re-issues when the key does not match or the certificate is from a foreign CA", async () => {
    const t = setup();
    await t.mgr.ensure();
    const other = await issueCa("someone-else", new Date(T0), 10 * DAY_MS);
    t.store.put("ms2m-agent-tls", { ...t.tls(), data: { ...t.tls().data, "tls.key": other.key } });
    expect((await t.mgr.ensure()).reasons).toContain("serving key does not match the certificate");
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);

    t.store.put("ms2m-agent-tls", {
      ...t.tls(),
      data: { ...t.tls().data, "tls.crt": other.cert, "tls.key": other.key },
    });
    expect((await t.mgr.ensure()).reasons).toContain("serving certificate not signed by a trusted CA");
    expect(verifies(t.serving(), t.bundle(), t.clock.now)).toBe(true);
    expect(t.bundle().some((c) => c.subject.includes("someone-else"))).toBe(false);
  });

  it("retries on conflicts with another replica writing in between", async () => {
    const t = setup();
    await t.mgr.ensure();
    t.clock.now += 61 * DAY_MS; // renewal due
    let interfered = false;
    t.store.beforeWrite = (name) => {
      if (interfered || name !== "ms2m-agent-tls") return;
      interfered = true;
      // Someone else bumps the Secret (e.g. a label) between our read and our write.
      const cur = t.store.secrets.get(name)!;
      t.store.put(name, { ...cur, labels: { ...cur.labels, touched: "yes" } });
    };
    const res = await t.mgr.ensure();
    expect(interfered).toBe(true);
    expect(res.changed).toEqual(["serving"]);
    expect(t.tls().labels).toMatchObject({ touched: "yes" }); // their change is kept
    expect(Date.parse(t.serving().validTo) - t.clock.now).toBe(90 * DAY_MS);
  });

  it("two replicas racing on an empty namespace end with one consistent CA and certificate", async () => {
    const t = setup();
    const other = new AgentTlsManager({ store: t.store, namespace: "ms2m-system", now: () => t.clock.now });
    const [a, b] = await Promise.all([t.mgr.ensure(), other.ensure()]);
    const bundle = t.bundle();
    expect(bundle).toHaveLength(1);
    expect(bundle[0]!.fingerprint256).toBe(t.signingCa().fingerprint256);
    expect(verifies(t.serving(), bundle, t.clock.now)).toBe(true);
    expect([a.caBundle, b.caBundle]).toContain(t.tls().data["ca.crt"]);
    expect((await t.mgr.ensure()).changed).toEqual([]);
  });

  it("gives up after repeated conflicts with an Ms2mError", async () => {
    const t = setup();
    await t.mgr.ensure();
    t.clock.now += 61 * DAY_MS;
    t.store.beforeWrite = (name) => {
      const cur = t.store.secrets.get(name)!;
      t.store.put(name, cur);
    };
    await expect(t.mgr.ensure()).rejects.toMatchObject({ name: "Ms2mError", reason: "Conflict" });
  });

  it("publishes the bundle to onBundle and records when the signing CA was published", async () => {
    const bundles: string[] = [];
    const store = new FakeSecretStore();
    const mgr = new AgentTlsManager({
      store,
      namespace: "ms2m-system",
      now: () => T0,
      onBundle: (b) => bundles.push(b),
    });
    await mgr.ensure();
    await mgr.ensure();
    expect(bundles).toHaveLength(2);
    expect(bundles[0]).toBe(store.secrets.get("ms2m-agent-tls")!.data["ca.crt"]);
    const ann = store.secrets.get("ms2m-agent-tls")!.annotations![PUBLISHED_ANNOTATION]!;
    expect(ann).toBe(
      `${new X509Certificate(store.secrets.get("ms2m-agent-ca")!.data["tls.crt"]!).fingerprint256} ${new Date(T0).toISOString()}`,
    );
  });

  it("never logs certificates or keys", async () => {
    let out = "";
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const t = setup({ log: pino({ level: "trace" }, sink) });
    await t.mgr.ensure();
    t.clock.now += 61 * DAY_MS;
    await t.mgr.ensure();
    t.store.put("ms2m-agent-tls", { ...t.tls(), data: { "tls.crt": "x", "tls.key": "y", "ca.crt": "z" } });
    await t.mgr.ensure();
    expect(out).toContain("agent TLS: certificates updated");
    expect(out).not.toMatch(/BEGIN|PRIVATE|MII/);
  });

  it("start/stop runs a pass and stops the loop", async () => {
    const t = setup();
    t.mgr.start();
    await t.mgr.stop();
    expect(t.tls()).toBeDefined();
  });
});
