// Encrypted checkpoint images against the real parts: Debian's docker-registry, skopeo (built
// with containers/ocicrypt) and containers-storage through two real agents. Shows that the
// registry holds only ciphertext, that our format is ocicrypt's both ways (skopeo decrypts what
// we push; we decrypt what skopeo encrypts), and that a wrong, missing or unexpected key fails
// clearly and leaves nothing in the target's storage.
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import {
  ANNOTATION_JWE,
  ANNOTATION_PUBOPTS,
  MEDIA_TYPE_LAYER_ENCRYPTED,
  openEncryptedLayer,
} from "../../../src/checkpoint/encryption.ts";
import { describeCheckpointImage } from "../../../src/checkpoint/image.ts";
import { pullCheckpointImage, pushCheckpointImage } from "../../../src/checkpoint/registry.ts";
import { listStoredImages, runSkopeo, storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import { Ms2mError } from "../../../src/common/errors.ts";
import { AgentClient } from "../../../src/transfer/client.ts";
import {
  TOKENS,
  makePki,
  residue,
  startAgent,
  startRegistry,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

const MAX = 1024 ** 3;
const TS = "2025-01-02T03:04:05Z";
const SIZE = 3 * 1024 * 1024;

type Pair = { publicKey: string; privateKey: string };
const rsa = (): Pair =>
  generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const ec = (): Pair =>
  generateKeyPairSync("ec", {
    namedCurve: "prime256v1",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });

let pki: Pki;
let registry: TestRegistry;
let source: TestAgent;
let target: TestAgent;
let controller: AgentClient;
let work: string;
const RSA = rsa();
const EC = ec();
const OTHER = rsa();
const files: Record<string, string> = {};
let archive: { name: string; path: string; digest: string; size: number; bytes: Buffer };

const insecure = () => ({ insecureHosts: [registry.host] });

/** Every file the registry stores (blobs, manifests, links), read from its storage folder. */
function registryFiles(): Buffer[] {
  const root = join(registry.dir, "data");
  return (readdirSync(root, { recursive: true }) as string[])
    .map((p) => join(root, p))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p));
}

/** Windows of the archive spread over it (random memory pages, tar headers, metadata files). */
function plaintextWindows(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 64 <= bytes.length; at += Math.floor(bytes.length / 37))
    out.push(bytes.subarray(at, at + 64));
  return out;
}

async function manifestOf(image: string): Promise<{
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  annotations?: Record<string, string>;
}> {
  const [host, rest] = [image.slice(0, image.indexOf("/")), image.slice(image.indexOf("/") + 1)];
  const [repo, tag] = rest.split(":") as [string, string];
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Awaited<ReturnType<typeof manifestOf>>;
}

async function blobOf(image: string, digest: string): Promise<Buffer> {
  const host = image.slice(0, image.indexOf("/"));
  const repo = image.slice(image.indexOf("/") + 1).split(":")[0]!;
  const res = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** Sends the source agent's archive to `image`, encrypted to `recipients`. */
function send(migration: string, image: string, recipients?: string[]) {
  // A sent archive is removed from the source node: each send gets its own copy.
  if (!existsSync(archive.path)) writeFileSync(archive.path, archive.bytes);
  return controller.send(source.url, {
    migration,
    namespace: "default",
    pod: "web-0",
    container: "app",
    archive: archive.name,
    destination: { type: "registry", image },
    retainArchiveOnFailure: true,
    ...(recipients ? { encryption: { recipients } } : {}),
  });
}

async function rejected(p: Promise<unknown>): Promise<Ms2mError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Ms2mError);
  return err as Ms2mError;
}

beforeAll(async () => {
  pki = makePki();
  work = tempDir("encryption");
  registry = await startRegistry();
  const env = { AGENT_INSECURE_REGISTRIES: registry.host };
  [source, target] = await Promise.all([
    startAgent(pki, { host: "127.0.0.1", env }),
    startAgent(pki, { host: "127.0.0.2", env }),
  ]);
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
  for (const [name, pair] of Object.entries({ rsa: RSA, ec: EC, other: OTHER })) {
    for (const [kind, pem] of [
      ["pub", pair.publicKey],
      ["priv", pair.privateKey],
    ] as const) {
      const path = join(work, `${name}-${kind}.pem`);
      writeFileSync(path, pem, { mode: 0o600 });
      files[`${name}-${kind}`] = path;
    }
  }
  const name = `checkpoint-web-0_default-app-${TS}.tar`;
  const path = join(source.checkpointsDir, name);
  await writeFakeCheckpointArchive(path, { size: SIZE, containerName: "app" });
  archive = { name, path, ...(await digestFile(path)), bytes: readFileSync(path) };
});

afterAll(async () => {
  await controller?.close();
  await Promise.all([source?.stop(), target?.stop(), registry?.stop()]);
  await removeTempDir(work);
  if (pki) await removeTempDir(pki.dir);
});

describe("encrypted checkpoint images through the registry", () => {
  const image = () => `${registry.host}/ms2m/enc:m1-app`;

  it("the source agent pushes only ciphertext: encrypted layer type, ocicrypt annotations, no plaintext in the registry", async () => {
    const sent = await send("m1", image(), [RSA.publicKey, EC.publicKey]);
    expect(sent.digest).toBe(archive.digest); // the archive's, as without encryption
    const m = await manifestOf(image());
    expect(m.layers).toHaveLength(1);
    const layer = m.layers[0]!;
    expect(layer.mediaType).toBe(MEDIA_TYPE_LAYER_ENCRYPTED);
    expect(layer.digest).not.toBe(archive.digest);
    expect(layer.size).toBe(archive.size);
    expect(Object.keys(layer.annotations ?? {}).sort()).toEqual([ANNOTATION_JWE, ANNOTATION_PUBOPTS]);
    expect(m.annotations?.["io.kubernetes.cri-o.annotations.checkpoint.name"]).toBe("app");

    const blob = await blobOf(image(), layer.digest);
    expect(blob).toHaveLength(archive.size);
    expect(blob.equals(archive.bytes)).toBe(false);
    // Nowhere in the registry's storage: neither the archive's blob nor any part of it.
    const stored = registryFiles();
    expect(stored.some((f) => f.length === archive.size && f.equals(blob))).toBe(true); // the ciphertext is there
    for (const w of plaintextWindows(archive.bytes)) {
      for (const f of stored) expect(f.indexOf(w)).toBe(-1);
    }
    // The archive's digest appears only as the config's diffID (it pins the decrypted bytes).
    const res = await fetch(`http://${registry.host}/v2/ms2m/enc/blobs/${archive.digest}`, {
      method: "HEAD",
    });
    expect(res.status).toBe(404);
  });

  it("the target agent decrypts and loads it under its registry name; nothing left in its work folder", async () => {
    const pulled = await controller.pull(target.url, {
      migration: "m1",
      source: image(),
      image: image(),
      expectedDigest: archive.digest,
      decryption: { privateKeys: [EC.privateKey] },
    });
    expect(pulled).toMatchObject({
      image: image(),
      digest: archive.digest,
      size: archive.size,
      containerName: "app",
    });
    const stored = (await storedManifest(target.store, image())) as {
      layers: { digest: string; mediaType: string }[];
    };
    expect(stored.layers).toEqual([expect.objectContaining({ digest: archive.digest })]);
    expect(await listStoredImages(target.store)).toEqual([image()]);
    expect(residue(target)).toEqual([]);
    // A released migration's loaded images go (the target recorded this one).
    await controller.releaseCheckpoints(target.url, "m1");
    expect(await listStoredImages(target.store)).toEqual([]);
  });

  it("skopeo (containers/ocicrypt) decrypts our image with the private key: the archive, byte for byte", async () => {
    for (const key of ["rsa-priv", "ec-priv"]) {
      const dir = join(work, `skopeo-${key}`);
      await runSkopeo([
        "copy",
        "--src-tls-verify=false",
        "--decryption-key",
        files[key]!,
        `docker://${image()}`,
        `oci:${dir}:t`,
      ]);
      const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as {
        manifests: { digest: string }[];
      };
      const blobs = join(dir, "blobs", "sha256");
      const m = JSON.parse(readFileSync(join(blobs, index.manifests[0]!.digest.slice(7)), "utf8")) as {
        layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
      };
      expect(m.layers[0]!.mediaType).toBe("application/vnd.oci.image.layer.v1.tar");
      expect(m.layers[0]!.digest).toBe(archive.digest);
      expect(readFileSync(join(blobs, archive.digest.slice(7))).equals(archive.bytes)).toBe(true);
    }
  });

  it("skopeo without the key, or with another key, cannot decrypt it", async () => {
    const dir = join(work, "skopeo-other");
    await expect(
      runSkopeo([
        "copy",
        "--src-tls-verify=false",
        "--decryption-key",
        files["other-priv"]!,
        `docker://${image()}`,
        `oci:${dir}:t`,
      ]),
    ).rejects.toThrow(/decrypt|key/i);
  });

  it("we open what skopeo encrypted (--encryption-key jwe:<pub.pem>, go-jose JWE), RSA and EC", async () => {
    // skopeo compresses a layer before encrypting it (tar+gzip+encrypted): our key handling,
    // HMAC and CTR decrypt it to the gzip stream, which gunzips to the archive. A checkpoint pull takes uncompressed layers only and refuses it by name.
    const plain = `${registry.host}/ms2m/plain:t`;
    await pushCheckpointImage(Readable.from([archive.bytes]), plain, "app", { ...insecure(), maxBytes: MAX });
    for (const [key, priv] of [
      ["rsa-pub", RSA.privateKey],
      ["ec-pub", EC.privateKey],
    ] as const) {
      const encrypted = `${registry.host}/ms2m/skopeo-enc:${key}`;
      await runSkopeo([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--encryption-key",
        `jwe:${files[key]!}`,
        `docker://${plain}`,
        `docker://${encrypted}`,
      ]);
      const layer = (await manifestOf(encrypted)).layers[0]!;
      expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip+encrypted");
      const blob = await blobOf(encrypted, layer.digest);
      expect(() => openEncryptedLayer(layer.annotations, [OTHER.privateKey], encrypted)).toThrow(
        /wrong key pair/,
      );
      const dec = openEncryptedLayer(layer.annotations, [priv], encrypted);
      const gz = dec.update(blob);
      dec.finish(); // the HMAC skopeo wrote
      // ocicrypt's key options carry the digest of the layer it was given (here the source's
      // uncompressed archive, before containers/image compressed it), as ours do.
      expect(dec.plainDigest).toBe(archive.digest);
      expect(gunzipSync(gz).equals(archive.bytes)).toBe(true);
      const tampered = Buffer.from(blob);
      tampered[tampered.length >> 1]! ^= 1;
      const dec2 = openEncryptedLayer(layer.annotations, [priv], encrypted);
      dec2.update(tampered);
      expect(() => dec2.finish()).toThrow(/HMAC mismatch/);

      const dir = join(work, `ours-${key}`);
      const err = await rejected(
        pullCheckpointImage(encrypted, dir, "t", { ...insecure(), maxBytes: MAX, decryptWith: [priv] }),
      );
      expect(err.message).toContain(
        "not a checkpoint image: layer is not an uncompressed OCI tar (plain or encrypted)",
      );
      await removeTempDir(dir);
    }
  });
});

describe("a wrong, missing or unexpected key fails clearly and leaves nothing on the target", () => {
  const image = () => `${registry.host}/ms2m/enc:m1-app`;
  const pull = (migration: string, from: string, keys?: string[]) =>
    controller.pull(target.url, {
      migration,
      source: from,
      image: from,
      expectedDigest: archive.digest,
      ...(keys ? { decryption: { privateKeys: keys } } : {}),
    });

  const nothingLeft = async () => {
    expect(await listStoredImages(target.store)).toEqual([]);
    expect(residue(target)).toEqual([]);
  };

  it("the wrong private key: Forbidden, 'wrong key pair?'", async () => {
    const err = await rejected(pull("m2", image(), [OTHER.privateKey]));
    expect(err.reason).toBe("Forbidden");
    expect(err.message).toContain(
      `checkpoint image ${image()} cannot be decrypted with the given private key (wrong key pair?)`,
    );
    await nothingLeft();
  });

  it("no private key: Forbidden, names spec.encryption.privateKeySecretRef", async () => {
    const err = await rejected(
      controller.pull(target.url, {
        migration: "m3",
        source: image(),
        image: "localhost/ms2m/enc:m3",
        expectedDigest: archive.digest,
      }),
    );
    expect(err.reason).toBe("Forbidden");
    expect(err.message).toContain(
      "is encrypted and no decryption key was given (spec.encryption.privateKeySecretRef)",
    );
    await nothingLeft();
  });

  it("a plaintext image where an encrypted one is expected is refused", async () => {
    const plain = `${registry.host}/ms2m/plain-expected-enc:t`;
    await send("m4", plain);
    const err = await rejected(pull("m4", plain, [RSA.privateKey]));
    expect(err.reason).toBe("Forbidden");
    expect(err.message).toContain("is not encrypted, but the migration asks for encryption");
    await nothingLeft();
  });

  it("a recorded digest that does not match the archive: the encrypted push cannot tell, the pull refuses it", async () => {
    const remote = `${registry.host}/ms2m/wrong-digest:t`;
    const other = `sha256:${createHash("sha256").update("something else").digest("hex")}`;
    await pushCheckpointImage(Readable.from([archive.bytes]), remote, "app", {
      ...insecure(),
      maxBytes: MAX,
      expectedDigest: other,
      encryptTo: [RSA.publicKey],
    });
    const dir = join(work, "wrong-digest");
    const err = await rejected(
      pullCheckpointImage(remote, dir, "t", { ...insecure(), maxBytes: MAX, decryptWith: [RSA.privateKey] }),
    );
    expect(err.message).toMatch(/digest mismatch/);
    expect(readdirSync(join(dir, "blobs", "sha256"))).toEqual([]);
    await removeTempDir(dir);
  });

  it("a tampered ciphertext (blob and manifest rewritten, key options kept): HMAC mismatch, nothing stored", async () => {
    const m = await manifestOf(image());
    const layer = m.layers[0]!;
    const blob = await blobOf(image(), layer.digest);
    const tampered = `${registry.host}/ms2m/tampered:t`;
    for (const at of [archive.size - 10, 700]) {
      // late: in the memory pages (the layout check passes); early: in a tar header (it fails first)
      const bad = Buffer.from(blob);
      bad[at]! ^= 0x20;
      const digest = `sha256:${createHash("sha256").update(bad).digest("hex")}`;
      // Upload the altered blob and a manifest naming it with the original annotations.
      const up = await fetch(`http://${registry.host}/v2/ms2m/tampered/blobs/uploads/`, { method: "POST" });
      const loc = new URL(up.headers.get("location")!, `http://${registry.host}`);
      loc.searchParams.set("digest", digest);
      expect((await fetch(loc, { method: "PUT", body: bad })).status).toBe(201);
      const img = describeCheckpointImage({ digest: archive.digest, size: archive.size }, "app", {
        mediaType: MEDIA_TYPE_LAYER_ENCRYPTED,
        digest,
        size: bad.length,
        annotations: layer.annotations!,
      });
      const cfgUp = await fetch(`http://${registry.host}/v2/ms2m/tampered/blobs/uploads/`, {
        method: "POST",
      });
      const cfgLoc = new URL(cfgUp.headers.get("location")!, `http://${registry.host}`);
      cfgLoc.searchParams.set("digest", img.config.descriptor.digest);
      expect((await fetch(cfgLoc, { method: "PUT", body: img.config.bytes })).status).toBe(201);
      const put = await fetch(`http://${registry.host}/v2/ms2m/tampered/manifests/t`, {
        method: "PUT",
        headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
        body: img.manifest.bytes,
      });
      expect(put.status).toBe(201);

      const err = await rejected(pull(`m5-${at}`, tampered, [RSA.privateKey]));
      expect(err.reason).toBe("Invalid");
      expect(err.message).toContain("layer HMAC mismatch (tampered or corrupt ciphertext)");
      await nothingLeft();
    }
  });
});
