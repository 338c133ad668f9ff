// spec.encryption's keys read from Secrets (src/controller/adapters/encryption.ts) and the
// transport an encrypted Registry migration gets.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AgentTransfer, type AgentLocator } from "../../../../src/controller/adapters/agent.ts";
import { encryptionKeys } from "../../../../src/controller/adapters/encryption.ts";
import type { AgentClient } from "../../../../src/transfer/index.ts";
import { transportFor } from "../../../../src/controller/transfer-modes/index.ts";
import { Ms2mError } from "../../../../src/common/errors.ts";

const A = generateKeyPairSync("ec", {
  namedCurve: "prime256v1",
  publicKeyEncoding: { type: "spki", format: "pem" },
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
});
const B = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  publicKeyEncoding: { type: "spki", format: "pem" },
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
});

const spec = {
  publicKeySecretRef: { name: "ckpt-pub", key: "pub.pem" },
  privateKeySecretRef: { name: "ckpt-priv", key: "priv.pem" },
};
const cluster = (secrets: Record<string, Record<string, string>>) => ({
  async getSecretKey(_ns: string, name: string, key: string) {
    return secrets[name]?.[key];
  },
});

async function reject(p: Promise<unknown>): Promise<Ms2mError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Ms2mError);
  expect((err as Ms2mError).retriable).toBe(false);
  return err as Ms2mError;
}

describe("encryptionKeys", () => {
  it("no spec.encryption: nothing read", async () => {
    expect(await encryptionKeys(cluster({}), "ns", undefined)).toBeUndefined();
  });

  it("a matching pair: both PEMs", async () => {
    const keys = await encryptionKeys(
      cluster({ "ckpt-pub": { "pub.pem": A.publicKey }, "ckpt-priv": { "priv.pem": A.privateKey } }),
      "ns",
      spec,
    );
    expect(keys).toEqual({ publicKey: A.publicKey, privateKey: A.privateKey });
  });

  it("a missing Secret or key names it", async () => {
    const err = await reject(encryptionKeys(cluster({ "ckpt-pub": { "pub.pem": A.publicKey } }), "ns", spec));
    expect(err.message).toBe(
      'encryption private key: Secret ns/ckpt-priv not found or has no key "priv.pem"',
    );
    const err2 = await reject(
      encryptionKeys(
        cluster({ "ckpt-pub": { other: A.publicKey }, "ckpt-priv": { "priv.pem": A.privateKey } }),
        "ns",
        spec,
      ),
    );
    expect(err2.message).toBe('encryption public key: Secret ns/ckpt-pub not found or has no key "pub.pem"');
  });

  it("a pair that does not match is refused before anything is sent", async () => {
    const err = await reject(
      encryptionKeys(
        cluster({ "ckpt-pub": { "pub.pem": A.publicKey }, "ckpt-priv": { "priv.pem": B.privateKey } }),
        "ns",
        spec,
      ),
    );
    expect(err.message).toBe(
      "encryption keys do not match: the private key in Secret ns/ckpt-priv key priv.pem cannot decrypt what is " +
        "encrypted to the public key in Secret ns/ckpt-pub key pub.pem",
    );
  });

  it("a key that is not PEM names the Secret", async () => {
    const err = await reject(
      encryptionKeys(
        cluster({ "ckpt-pub": { "pub.pem": "hello" }, "ckpt-priv": { "priv.pem": A.privateKey } }),
        "ns",
        spec,
      ),
    );
    expect(err.message).toMatch(
      /^encryption public key \(Secret ns\/ckpt-pub key pub\.pem\) is not a usable PEM key/,
    );
  });
});

describe("transportFor", () => {
  it("encrypted Registry: the image is only on the target node, loaded by its agent", () => {
    expect(transportFor("Registry")).toMatchObject({ imageOnTargetNodeOnly: false, needsTargetAgent: false });
    expect(transportFor("Registry", { encrypted: true })).toMatchObject({
      name: "Registry",
      imageOnTargetNodeOnly: true,
      needsTargetAgent: true,
    });
    expect(transportFor("Direct", { encrypted: true })).toBe(transportFor("Direct"));
  });
});

describe("AgentTransfer with encryption: who gets which key", () => {
  const UID = "6f0c1d2e-aaaa-bbbb-cccc-0123456789ab";
  const digest = `sha256:${"a".repeat(64)}`;
  function fakes() {
    const calls: [string, string, Record<string, unknown>][] = [];
    const client = {
      async send(url: string, body: Record<string, unknown>) {
        calls.push(["send", url, body]);
        return { image: (body["destination"] as { image: string }).image, digest, size: 7 };
      },
      async pull(url: string, body: Record<string, unknown>) {
        calls.push(["pull", url, body]);
        return {
          image: body["image"],
          digest,
          size: 7,
          containerName: "app",
          pullSeconds: 0,
          loadSeconds: 0,
        };
      },
    } as unknown as AgentClient;
    const locator = { urlFor: async (node: string) => `https://${node}:9443` } as unknown as AgentLocator;
    return { t: new AgentTransfer(client, locator), calls };
  }
  const req = (mode: "Registry" | "Direct", encryption?: { publicKey: string; privateKey: string }) => ({
    mode,
    namespace: "default",
    pod: "web-0",
    container: "app",
    sourceNode: "node-a",
    targetNode: "node-b",
    archivePath: "checkpoint-web-0_default-app-2025-01-01T00:00:00Z.tar",
    image: "registry:5000/ms2m/checkpoints:app-6f0c1d2eaaaa",
    key: `${UID}/app`,
    ...(encryption ? { encryption } : {}),
  });

  it("the source gets only the public key, the target's pull only the private key and the pinned digest", async () => {
    const f = fakes();
    const keys = { publicKey: A.publicKey, privateKey: A.privateKey };
    const res = await f.t.transfer(req("Registry", keys));
    expect(f.calls.map(([op, url]) => [op, url])).toEqual([
      ["send", "https://node-a:9443"],
      ["pull", "https://node-b:9443"],
    ]);
    const [, , send] = f.calls[0]!;
    expect(send["encryption"]).toEqual({ recipients: [A.publicKey] });
    expect(JSON.stringify(send)).not.toContain("PRIVATE KEY");
    const [, , pull] = f.calls[1]!;
    expect(pull).toEqual({
      migration: UID,
      source: "registry:5000/ms2m/checkpoints:app-6f0c1d2eaaaa",
      image: "registry:5000/ms2m/checkpoints:app-6f0c1d2eaaaa",
      expectedDigest: digest,
      decryption: { privateKeys: [A.privateKey] },
    });
    expect(res).toEqual({ image: "registry:5000/ms2m/checkpoints:app-6f0c1d2eaaaa", digest, bytes: 7 });
  });

  it("without encryption Registry only pushes (the target's runtime pulls)", async () => {
    const f = fakes();
    await f.t.transfer(req("Registry"));
    expect(f.calls.map(([op]) => op)).toEqual(["send"]);
    expect(f.calls[0]![2]["encryption"]).toBeUndefined();
  });
});
