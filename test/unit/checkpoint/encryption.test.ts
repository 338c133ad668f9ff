// OCI layer encryption (src/checkpoint/encryption.ts): round trips with RSA and EC recipients,
// what a tampered layer, a wrong key, no key and unusable keys give, and the JWE pieces against
// the RFC 7518 vector. Interop with skopeo/ocicrypt is in test/component/checkpoint/encryption.test.ts.
import { createHash, createPrivateKey, diffieHellman, generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  ANNOTATION_JWE,
  ANNOTATION_PUBOPTS,
  LayerEncryptor,
  MEDIA_TYPE_LAYER_ENCRYPTED,
  concatKdf,
  jweDecrypt,
  jweEncrypt,
  openEncryptedLayer,
  parsePrivateKey,
  parsePublicKey,
} from "../../../src/checkpoint/encryption.ts";
import { describeCheckpointImage } from "../../../src/checkpoint/image.ts";
import { parseCheckpointManifest } from "../../../src/checkpoint/registry.ts";
import { Ms2mError } from "../../../src/common/errors.ts";

type Pair = { publicKey: string; privateKey: string };
const rsa = (bits = 2048): Pair =>
  generateKeyPairSync("rsa", {
    modulusLength: bits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const ec = (namedCurve: string): Pair =>
  generateKeyPairSync("ec", {
    namedCurve,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
const RSA = rsa();
const RSA2 = rsa();
const P256 = ec("prime256v1");
const P384 = ec("secp384r1");
const P521 = ec("secp521r1");

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Encrypts `plain` in chunks of `chunk` bytes, as a push does. */
function encrypt(plain: Buffer, recipients: string[], chunk = 4096) {
  const enc = new LayerEncryptor(recipients);
  const parts: Buffer[] = [];
  for (let i = 0; i < plain.length; i += chunk) parts.push(enc.update(plain.subarray(i, i + chunk)));
  const layer = enc.finish(sha256(plain));
  return { ciphertext: Buffer.concat(parts), layer };
}

/** Decrypts as a pull does; throws what finish() throws. */
function decrypt(ciphertext: Buffer, annotations: Record<string, unknown>, keys: string[] | undefined) {
  const dec = openEncryptedLayer(annotations, keys, "registry.test/app:t");
  const parts: Buffer[] = [];
  for (let i = 0; i < ciphertext.length; i += 1000) parts.push(dec.update(ciphertext.subarray(i, i + 1000)));
  dec.finish();
  return { plain: Buffer.concat(parts), digest: dec.plainDigest };
}

const caught = (fn: () => unknown): Ms2mError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Ms2mError);
    return err as Ms2mError;
  }
  throw new Error("expected an error");
};

describe("layer round trip", () => {
  const plain = randomBytes(100_003);
  it.each([
    ["RSA 2048", RSA],
    ["EC P-256", P256],
    ["EC P-384", P384],
    ["EC P-521", P521],
  ])("%s: decrypts to the same bytes; the descriptor names the ciphertext", (_name, pair) => {
    const { ciphertext, layer } = encrypt(plain, [pair.publicKey]);
    expect(layer.mediaType).toBe(MEDIA_TYPE_LAYER_ENCRYPTED);
    expect(layer.size).toBe(plain.length); // CTR keeps the size
    expect(layer.digest).toBe(sha256(ciphertext));
    expect(ciphertext.equals(plain)).toBe(false);
    // No 16-byte window of the plaintext survives in the ciphertext.
    expect(ciphertext.indexOf(plain.subarray(5000, 5016))).toBe(-1);
    const jwe = JSON.parse(Buffer.from(layer.annotations[ANNOTATION_JWE]!, "base64").toString()) as Record<
      string,
      unknown
    >;
    const alg = (jwe["header"] as { alg: string }).alg;
    expect(alg).toBe(pair === RSA ? "RSA-OAEP" : "ECDH-ES+A256KW");
    const pub = JSON.parse(Buffer.from(layer.annotations[ANNOTATION_PUBOPTS]!, "base64").toString()) as {
      cipher: string;
      hmac: string;
    };
    expect(pub.cipher).toBe("AES_256_CTR_HMAC_SHA256");
    expect(Buffer.from(pub.hmac, "base64")).toHaveLength(32);
    // The symmetric key is only inside the JWE.
    expect(JSON.stringify(layer.annotations)).not.toMatch(/symkey/);

    const got = decrypt(ciphertext, layer.annotations, [pair.privateKey]);
    expect(got.plain.equals(plain)).toBe(true);
    expect(got.digest).toBe(sha256(plain));
  });

  it("two layers encrypted to the same key get different keys and nonces (no keystream reuse)", () => {
    const a = encrypt(plain, [RSA.publicKey]);
    const b = encrypt(plain, [RSA.publicKey]);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.layer.annotations[ANNOTATION_PUBOPTS]).not.toBe(b.layer.annotations[ANNOTATION_PUBOPTS]);
  });

  it("several recipients: each private key alone decrypts", () => {
    const { ciphertext, layer } = encrypt(plain, [RSA.publicKey, P256.publicKey]);
    expect(decrypt(ciphertext, layer.annotations, [RSA.privateKey]).plain.equals(plain)).toBe(true);
    expect(decrypt(ciphertext, layer.annotations, [P256.privateKey]).plain.equals(plain)).toBe(true);
    expect(() => decrypt(ciphertext, layer.annotations, [RSA2.privateKey])).toThrow(/cannot be decrypted/);
  });

  it("of several private keys given, the one that fits is used", () => {
    const { ciphertext, layer } = encrypt(plain, [P384.publicKey]);
    expect(
      decrypt(ciphertext, layer.annotations, [RSA.privateKey, P384.privateKey]).plain.equals(plain),
    ).toBe(true);
  });

  it("an empty layer", () => {
    const { ciphertext, layer } = encrypt(Buffer.alloc(0), [RSA.publicKey]);
    expect(layer.size).toBe(0);
    expect(decrypt(ciphertext, layer.annotations, [RSA.privateKey]).plain).toHaveLength(0);
  });
});

describe("failures are clear", () => {
  const plain = randomBytes(20_000);
  const { ciphertext, layer } = encrypt(plain, [RSA.publicKey]);

  it("a flipped ciphertext bit: HMAC mismatch, non-retriable", () => {
    for (const at of [0, 9_999, ciphertext.length - 1]) {
      const bad = Buffer.from(ciphertext);
      bad[at]! ^= 0x01;
      const err = caught(() => decrypt(bad, layer.annotations, [RSA.privateKey]));
      expect(err.reason).toBe("Invalid");
      expect(err.retriable).toBe(false);
      expect(err.message).toMatch(
        /encrypted checkpoint image: layer HMAC mismatch \(tampered or corrupt ciphertext\)/,
      );
    }
  });

  it("a truncated or extended ciphertext: HMAC mismatch", () => {
    expect(() => decrypt(ciphertext.subarray(0, -1), layer.annotations, [RSA.privateKey])).toThrow(
      /HMAC mismatch/,
    );
    expect(() =>
      decrypt(Buffer.concat([ciphertext, Buffer.of(0)]), layer.annotations, [RSA.privateKey]),
    ).toThrow(/HMAC mismatch/);
  });

  it("a public-options HMAC replaced: mismatch", () => {
    const pub = JSON.parse(
      Buffer.from(layer.annotations[ANNOTATION_PUBOPTS]!, "base64").toString(),
    ) as Record<string, unknown>;
    pub["hmac"] = randomBytes(32).toString("base64");
    const ann = {
      ...layer.annotations,
      [ANNOTATION_PUBOPTS]: Buffer.from(JSON.stringify(pub)).toString("base64"),
    };
    expect(() => decrypt(ciphertext, ann, [RSA.privateKey])).toThrow(/HMAC mismatch/);
  });

  it("the wrong private key: Forbidden, names the image and the likely cause", () => {
    for (const wrong of [RSA2.privateKey, P256.privateKey]) {
      const err = caught(() => openEncryptedLayer(layer.annotations, [wrong], "registry.test/app:t"));
      expect(err.reason).toBe("Forbidden");
      expect(err.retriable).toBe(false);
      expect(err.message).toBe(
        "checkpoint image registry.test/app:t cannot be decrypted with the given private key (wrong key pair?)",
      );
    }
  });

  it("the wrong EC key of the same curve", () => {
    const enc = encrypt(plain, [P256.publicKey]);
    const other = ec("prime256v1");
    expect(() => openEncryptedLayer(enc.layer.annotations, [other.privateKey], "i")).toThrow(
      /wrong key pair/,
    );
  });

  it("no private key: Forbidden, names the spec field", () => {
    for (const keys of [undefined, []]) {
      const err = caught(() => openEncryptedLayer(layer.annotations, keys, "registry.test/app:t"));
      expect(err.reason).toBe("Forbidden");
      expect(err.message).toMatch(
        /is encrypted and no decryption key was given \(spec\.encryption\.privateKeySecretRef\)/,
      );
    }
  });

  it("a JWE whose ciphertext or tag was altered does not open (GCM), even with the right key", () => {
    const jwe = JSON.parse(Buffer.from(layer.annotations[ANNOTATION_JWE]!, "base64").toString()) as Record<
      string,
      string
    >;
    const ct = Buffer.from(jwe["ciphertext"]!, "base64url");
    ct[0]! ^= 0x80;
    const altered = { ...jwe, ciphertext: ct.toString("base64url") };
    const ann = {
      ...layer.annotations,
      [ANNOTATION_JWE]: Buffer.from(JSON.stringify(altered)).toString("base64"),
    };
    expect(() => openEncryptedLayer(ann, [RSA.privateKey], "i")).toThrow(/wrong key pair/);
  });

  it("missing or malformed annotations", () => {
    expect(() => openEncryptedLayer({}, [RSA.privateKey], "i")).toThrow(
      /encrypted checkpoint image: no org\.opencontainers\.image\.enc\.keys\.jwe annotation/,
    );
    expect(() =>
      openEncryptedLayer(
        { [ANNOTATION_JWE]: Buffer.from("not json").toString("base64") },
        [RSA.privateKey],
        "i",
      ),
    ).toThrow(/not a JWE JSON serialization/);
    const noPub = { [ANNOTATION_JWE]: layer.annotations[ANNOTATION_JWE] };
    expect(() => openEncryptedLayer(noPub, [RSA.privateKey], "i")).toThrow(
      /layer options are not JSON|cipher/,
    );
  });

  it("another cipher in the public options is refused", () => {
    const pub = { cipher: "AES_128_CBC", hmac: randomBytes(32).toString("base64"), cipheroptions: {} };
    const ann = {
      ...layer.annotations,
      [ANNOTATION_PUBOPTS]: Buffer.from(JSON.stringify(pub)).toString("base64"),
    };
    expect(() => openEncryptedLayer(ann, [RSA.privateKey], "i")).toThrow(/cipher AES_128_CBC not supported/);
  });
});

describe("keys", () => {
  it("refuses RSA below 2048 bits, Ed25519, P-256K and garbage, naming what was given", () => {
    expect(() => parsePublicKey(rsa(1024).publicKey)).toThrow(
      "encryption public key is not a usable PEM key: RSA key of 1024 bits (at least 2048)",
    );
    const ed = generateKeyPairSync("ed25519", {
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    expect(() => parsePublicKey(ed.publicKey)).toThrow(/ed25519 keys are not supported \(RSA or EC\)/);
    expect(() => parsePrivateKey(ed.privateKey)).toThrow(/ed25519 keys are not supported/);
    expect(() => parsePublicKey(ec("secp256k1").publicKey)).toThrow(
      /EC curve secp256k1 \(P-256, P-384 or P-521\)/,
    );
    expect(() =>
      parsePublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "my key"),
    ).toThrow(/^my key is not a usable PEM key/);
    expect(() => parsePublicKey("x".repeat(70_000))).toThrow(/too large/);
  });

  it("accepts PKCS#1 RSA and SEC1 EC private keys, and a private key where a public one is asked", () => {
    const pkcs1 = createPrivateKey(RSA.privateKey).export({ type: "pkcs1", format: "pem" }) as string;
    const sec1 = createPrivateKey(P256.privateKey).export({ type: "sec1", format: "pem" }) as string;
    expect(parsePrivateKey(pkcs1).asymmetricKeyType).toBe("rsa");
    expect(parsePrivateKey(sec1).asymmetricKeyType).toBe("ec");
    expect(parsePublicKey(RSA.privateKey).type).toBe("public");
  });

  it("a LayerEncryptor needs a recipient", () => {
    expect(() => new LayerEncryptor([])).toThrow(/no encryption public key/);
    expect(() => jweEncrypt(Buffer.from("x"), [])).toThrow(/no encryption recipient/);
  });
});

describe("JWE", () => {
  it("one recipient: flattened serialization; several: general", () => {
    const one = JSON.parse(jweEncrypt(Buffer.from("p"), [parsePublicKey(RSA.publicKey)])) as Record<
      string,
      unknown
    >;
    expect(Object.keys(one).sort()).toEqual([
      "ciphertext",
      "encrypted_key",
      "header",
      "iv",
      "protected",
      "tag",
    ]);
    const two = JSON.parse(
      jweEncrypt(Buffer.from("p"), [parsePublicKey(RSA.publicKey), parsePublicKey(P521.publicKey)]),
    ) as Record<string, unknown>;
    expect(two["recipients"]).toHaveLength(2);
    expect(JSON.parse(Buffer.from(two["protected"] as string, "base64url").toString())).toEqual({
      enc: "A256GCM",
    });
  });

  it("opens with the recipient's private key only", () => {
    const flat = jweEncrypt(Buffer.from("payload"), [parsePublicKey(P256.publicKey)]);
    expect(jweDecrypt(flat, [parsePrivateKey(P256.privateKey)])?.toString()).toBe("payload");
    expect(
      jweDecrypt(flat, [parsePrivateKey(P384.privateKey), parsePrivateKey(RSA.privateKey)]),
    ).toBeUndefined();
  });

  it("Concat KDF: RFC 7518 appendix C (ECDH-ES, A128GCM, apu Alice, apv Bob)", () => {
    const alice = createPrivateKey({
      key: {
        kty: "EC",
        crv: "P-256",
        x: "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
        y: "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps",
        d: "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo",
      },
      format: "jwk",
    });
    const bob = createPrivateKey({
      key: {
        kty: "EC",
        crv: "P-256",
        x: "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ",
        y: "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck",
        d: "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw",
      },
      format: "jwk",
    });
    const z = diffieHellman({ privateKey: alice, publicKey: bob });
    expect([...z]).toEqual([
      158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128,
      106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ]);
    const key = concatKdf(z, "A128GCM", 128, Buffer.from("Alice"), Buffer.from("Bob"));
    expect(key.toString("base64url")).toBe("VqqN6vgjbSBcIijNcacQGg");
  });
});

describe("the image", () => {
  const plain = randomBytes(3000);
  const { layer } = encrypt(plain, [RSA.publicKey]);
  const img = describeCheckpointImage({ digest: sha256(plain), size: plain.length }, "app", layer);
  const manifest = JSON.parse(img.manifest.bytes.toString()) as {
    layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
  };
  const config = JSON.parse(img.config.bytes.toString()) as { rootfs: { diff_ids: string[] } };

  it("the manifest names the ciphertext blob with its annotations; the config's diffID is the archive's", () => {
    expect(manifest.layers).toHaveLength(1);
    expect(manifest.layers[0]!.mediaType).toBe(MEDIA_TYPE_LAYER_ENCRYPTED);
    expect(manifest.layers[0]!.digest).toBe(layer.digest);
    expect(manifest.layers[0]!.annotations).toEqual(layer.annotations);
    expect(config.rootfs.diff_ids).toEqual([sha256(plain)]);
  });

  it("parseCheckpointManifest: the encrypted layer with its annotations; plain layers carry none", () => {
    const parsed = parseCheckpointManifest(JSON.parse(img.manifest.bytes.toString()));
    expect(parsed.layer).toEqual({
      digest: layer.digest,
      size: plain.length,
      encrypted: true,
      annotations: layer.annotations,
    });
    const plainImg = describeCheckpointImage({ digest: sha256(plain), size: plain.length }, "app");
    expect(parseCheckpointManifest(JSON.parse(plainImg.manifest.bytes.toString())).layer).toEqual({
      digest: sha256(plain),
      size: plain.length,
      encrypted: false,
    });
    const gz = JSON.parse(img.manifest.bytes.toString()) as typeof manifest;
    gz.layers[0]!.mediaType = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
    expect(() => parseCheckpointManifest(gz)).toThrow(/not an uncompressed OCI tar/);
  });
});
