// OCI image layer encryption (the containers/ocicrypt format that skopeo `--encryption-key
// jwe:…` / `--decryption-key` and CRI-O's decryption keys read), done in the stream: the
// checkpoint archive is encrypted while it is pushed and decrypted while it is pulled, never
// stored in clear outside the source node's checkpoints folder and the target node's
// containers-storage.
//
// Format (ocicrypt v1.2 encryption.go, blockcipher/blockcipher_aes_ctr.go, keywrap/jwe):
//  - layer media type `application/vnd.oci.image.layer.v1.tar+encrypted`; digest and size are
//    those of the ciphertext (AES-256-CTR keeps the size);
//  - data: AES-256-CTR with a random 32-byte key and 16-byte nonce; HMAC-SHA256 with the same key
//    over the ciphertext (checked before the decrypted stream is trusted);
//  - annotation `org.opencontainers.image.enc.keys.jwe`: base64 of a JWE (JSON serialization,
//    A256GCM, one recipient per public key: RSA-OAEP for RSA keys, ECDH-ES+A256KW for EC keys)
//    whose payload is the private options `{"symkey","digest","cipheroptions":{"nonce"}}` —
//    `digest` is the plaintext layer's (the diffID), so the decrypted archive is pinned too;
//  - annotation `org.opencontainers.image.enc.pubopts`: base64 of
//    `{"cipher":"AES_256_CTR_HMAC_SHA256","hmac","cipheroptions":{}}`.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  constants,
  type CipherGCMTypes,
  type Cipheriv,
  type Hash,
  type Hmac,
  type KeyObject,
} from "node:crypto";
import { Ms2mError } from "../common/errors.ts";

export const MEDIA_TYPE_LAYER_ENCRYPTED = "application/vnd.oci.image.layer.v1.tar+encrypted";
export const ANNOTATION_JWE = "org.opencontainers.image.enc.keys.jwe";
export const ANNOTATION_PUBOPTS = "org.opencontainers.image.enc.pubopts";
const CIPHER = "AES_256_CTR_HMAC_SHA256";
const MAX_KEY_PEM = 64 * 1024;

const b64u = (b: Buffer) => b.toString("base64url");
const fromB64u = (s: unknown, what: string): Buffer => {
  if (typeof s !== "string" || !/^[A-Za-z0-9_-]*$/.test(s)) throw bad(`JWE ${what} is not base64url`);
  return Buffer.from(s, "base64url");
};
function bad(message: string): Ms2mError {
  return new Ms2mError("Invalid", `encrypted checkpoint image: ${message}`, { retriable: false });
}

function keyError(what: string, err: unknown): Ms2mError {
  return new Ms2mError("Invalid", `${what} is not a usable PEM key: ${(err as Error).message}`, {
    retriable: false,
  });
}

/** A recipient's public key (PEM: SPKI, PKCS#1 RSA, or a certificate's key). RSA ≥ 2048 bits or EC. */
export function parsePublicKey(pem: string, what = "encryption public key"): KeyObject {
  if (pem.length > MAX_KEY_PEM) throw keyError(what, new Error("too large"));
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw keyError(what, err);
  }
  checkKeyType(key, what);
  return key;
}

/** A private key (PEM: PKCS#8, PKCS#1 RSA, SEC1 EC; unencrypted). */
export function parsePrivateKey(pem: string, what = "decryption private key"): KeyObject {
  if (pem.length > MAX_KEY_PEM) throw keyError(what, new Error("too large"));
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw keyError(what, err);
  }
  checkKeyType(key, what);
  return key;
}

function checkKeyType(key: KeyObject, what: string): void {
  const t = key.asymmetricKeyType;
  if (t === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw keyError(what, new Error(`RSA key of ${bits} bits (at least 2048)`));
  } else if (t === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (!["prime256v1", "secp384r1", "secp521r1"].includes(curve ?? ""))
      throw keyError(what, new Error(`EC curve ${curve} (P-256, P-384 or P-521)`));
  } else throw keyError(what, new Error(`${t} keys are not supported (RSA or EC)`));
}

// ---- JWE (RFC 7516 JSON serialization) with RSA-OAEP / ECDH-ES+AxxxKW and A256GCM ----

const JWK_CURVE: Record<string, string> = {
  "P-256": "prime256v1",
  "P-384": "secp384r1",
  "P-521": "secp521r1",
};

/** RFC 7518 4.6.2: Concat KDF (SHA-256) for ECDH-ES key agreement (exported for its test vector). */
export function concatKdf(z: Buffer, alg: string, bits: number, apu: Buffer, apv: Buffer): Buffer {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const lp = (b: Buffer) => Buffer.concat([u32(b.length), b]);
  const other = Buffer.concat([lp(Buffer.from(alg)), lp(apu), lp(apv), u32(bits)]);
  const out: Buffer[] = [];
  for (let i = 1; out.length * 32 < bits / 8; i++) {
    out.push(createHash("sha256").update(u32(i)).update(z).update(other).digest());
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

const KW_BITS: Record<string, number> = {
  "ECDH-ES+A128KW": 128,
  "ECDH-ES+A192KW": 192,
  "ECDH-ES+A256KW": 256,
};
const KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

function wrapFor(key: KeyObject, cek: Buffer): { header: Record<string, unknown>; encrypted_key: string } {
  if (key.asymmetricKeyType === "rsa") {
    const ek = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek);
    return { header: { alg: "RSA-OAEP" }, encrypted_key: b64u(ek) };
  }
  const alg = "ECDH-ES+A256KW";
  const curve = key.asymmetricKeyDetails?.namedCurve ?? "";
  const eph = generateKeyPairSync("ec", { namedCurve: curve });
  const z = diffieHellman({ privateKey: eph.privateKey, publicKey: key });
  const kek = concatKdf(z, alg, 256, Buffer.alloc(0), Buffer.alloc(0));
  const c = createCipheriv("id-aes256-wrap", kek, KW_IV);
  const ek = Buffer.concat([c.update(cek), c.final()]);
  const jwk = eph.publicKey.export({ format: "jwk" });
  return {
    header: { alg, epk: { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y } },
    encrypted_key: b64u(ek),
  };
}

function unwrapWith(key: KeyObject, header: Record<string, unknown>, encryptedKey: Buffer): Buffer {
  const alg = header["alg"];
  if (key.asymmetricKeyType === "rsa" && (alg === "RSA-OAEP" || alg === "RSA-OAEP-256")) {
    return privateDecrypt(
      { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: alg === "RSA-OAEP" ? "sha1" : "sha256" },
      encryptedKey,
    );
  }
  if (key.asymmetricKeyType === "ec" && typeof alg === "string" && alg in KW_BITS) {
    const epk = header["epk"] as { kty?: unknown; crv?: unknown; x?: unknown; y?: unknown } | undefined;
    if (!epk || epk.kty !== "EC" || typeof epk.crv !== "string" || JWK_CURVE[epk.crv] === undefined)
      throw new Error("bad epk");
    const pub = createPublicKey({
      key: { kty: "EC", crv: epk.crv, x: String(epk.x), y: String(epk.y) },
      format: "jwk",
    });
    const z = diffieHellman({ privateKey: key, publicKey: pub });
    const bits = KW_BITS[alg]!;
    const apu = header["apu"] ? fromB64u(header["apu"], "apu") : Buffer.alloc(0);
    const apv = header["apv"] ? fromB64u(header["apv"], "apv") : Buffer.alloc(0);
    const kek = concatKdf(z, alg, bits, apu, apv);
    const d = createDecipheriv(`id-aes${bits}-wrap`, kek, KW_IV);
    return Buffer.concat([d.update(encryptedKey), d.final()]);
  }
  throw new Error(`key does not fit ${String(alg)}`);
}

/** Encrypts `payload` to every recipient (JWE JSON serialization, flattened for one). */
export function jweEncrypt(payload: Buffer, recipients: KeyObject[]): string {
  if (recipients.length === 0) throw new Ms2mError("BadRequest", "no encryption recipient");
  const cek = randomBytes(32);
  const iv = randomBytes(12);
  const wrapped = recipients.map((k) => wrapFor(k, cek));
  const protectedHeader = b64u(Buffer.from(JSON.stringify({ enc: "A256GCM" })));
  const c = createCipheriv("aes-256-gcm", cek, iv);
  c.setAAD(Buffer.from(protectedHeader, "ascii"));
  const ciphertext = Buffer.concat([c.update(payload), c.final()]);
  const body = { iv: b64u(iv), ciphertext: b64u(ciphertext), tag: b64u(c.getAuthTag()) };
  return JSON.stringify(
    wrapped.length === 1
      ? {
          protected: protectedHeader,
          header: wrapped[0]!.header,
          encrypted_key: wrapped[0]!.encrypted_key,
          ...body,
        }
      : { protected: protectedHeader, recipients: wrapped, ...body },
  );
}

/** Decrypts a JWE with the first key that fits; undefined when none does. */
export function jweDecrypt(jwe: string, keys: KeyObject[]): Buffer | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(jwe) as Record<string, unknown>;
  } catch {
    throw bad("the key annotation is not a JWE JSON serialization");
  }
  if (typeof raw !== "object" || raw === null)
    throw bad("the key annotation is not a JWE JSON serialization");
  const protectedText = typeof raw["protected"] === "string" ? raw["protected"] : "";
  let protectedHeader: Record<string, unknown> = {};
  if (protectedText) {
    try {
      protectedHeader = JSON.parse(fromB64u(protectedText, "protected header").toString("utf8")) as Record<
        string,
        unknown
      >;
    } catch (err) {
      if (err instanceof Ms2mError) throw err;
      throw bad("JWE protected header is not JSON");
    }
  }
  const shared = { ...(raw["unprotected"] as Record<string, unknown> | undefined), ...protectedHeader };
  const enc = shared["enc"];
  const gcmBits: Record<string, number> = { A128GCM: 128, A192GCM: 192, A256GCM: 256 };
  if (typeof enc !== "string" || gcmBits[enc] === undefined)
    throw bad(`JWE content encryption ${String(enc)} not supported`);
  const list = Array.isArray(raw["recipients"])
    ? (raw["recipients"] as { header?: Record<string, unknown>; encrypted_key?: unknown }[])
    : [{ header: raw["header"] as Record<string, unknown> | undefined, encrypted_key: raw["encrypted_key"] }];
  const iv = fromB64u(raw["iv"], "iv");
  const ciphertext = fromB64u(raw["ciphertext"], "ciphertext");
  const tag = fromB64u(raw["tag"], "tag");
  const aad = Buffer.from(
    typeof raw["aad"] === "string" ? `${protectedText}.${raw["aad"]}` : protectedText,
    "ascii",
  );
  for (const r of list.slice(0, 64)) {
    const header = { ...shared, ...r.header };
    const ek = fromB64u(r.encrypted_key, "encrypted key");
    for (const key of keys) {
      let cek: Buffer;
      try {
        cek = unwrapWith(key, header, ek);
      } catch {
        continue;
      }
      if (cek.length * 8 !== gcmBits[enc]) continue;
      try {
        const d = createDecipheriv(`aes-${gcmBits[enc]}-gcm` as CipherGCMTypes, cek, iv);
        d.setAAD(aad);
        d.setAuthTag(tag);
        return Buffer.concat([d.update(ciphertext), d.final()]);
      } catch {
        continue;
      }
    }
  }
  return undefined;
}

// ---- the layer ----

export interface EncryptedLayer {
  mediaType: typeof MEDIA_TYPE_LAYER_ENCRYPTED;
  /** sha256 and size of the ciphertext (the blob in the registry). */
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

/** Encrypts a layer as it streams: `update` each plaintext chunk, `finish` with the plaintext digest. */
export class LayerEncryptor {
  private readonly key = randomBytes(32);
  private readonly nonce = randomBytes(16);
  private readonly cipher: Cipheriv;
  private readonly hmac: Hmac;
  private readonly hash: Hash = createHash("sha256");
  private readonly recipients: KeyObject[];
  private size = 0;

  constructor(publicKeysPem: string[]) {
    if (publicKeysPem.length === 0) throw new Ms2mError("BadRequest", "no encryption public key");
    this.recipients = publicKeysPem.map((p) => parsePublicKey(p));
    this.cipher = createCipheriv("aes-256-ctr", this.key, this.nonce);
    this.hmac = createHmac("sha256", this.key);
  }

  update(plain: Buffer): Buffer {
    const ct = this.cipher.update(plain);
    this.hmac.update(ct);
    this.hash.update(ct);
    this.size += ct.length;
    return ct;
  }

  finish(plainDigest: string): EncryptedLayer {
    const tail = this.cipher.final();
    if (tail.length) throw new Error("AES-CTR produced trailing bytes");
    const privOpts = {
      symkey: this.key.toString("base64"),
      digest: plainDigest,
      cipheroptions: { nonce: this.nonce.toString("base64") },
    };
    const pubOpts = { cipher: CIPHER, hmac: this.hmac.digest().toString("base64"), cipheroptions: {} };
    const jwe = jweEncrypt(Buffer.from(JSON.stringify(privOpts)), this.recipients);
    return {
      mediaType: MEDIA_TYPE_LAYER_ENCRYPTED,
      digest: `sha256:${this.hash.digest("hex")}`,
      size: this.size,
      annotations: {
        [ANNOTATION_JWE]: Buffer.from(jwe).toString("base64"),
        [ANNOTATION_PUBOPTS]: Buffer.from(JSON.stringify(pubOpts)).toString("base64"),
      },
    };
  }
}

/** Decrypts a layer as it streams; `finish` checks the HMAC (nothing decrypted is trusted before). */
export class LayerDecryptor {
  /** The plaintext layer's digest (the diffID) from the private options. */
  readonly plainDigest: string;
  private readonly decipher;
  private readonly hmac: Hmac;
  private readonly expectedHmac: Buffer;

  constructor(key: Buffer, nonce: Buffer, hmac: Buffer, plainDigest: string) {
    this.plainDigest = plainDigest;
    this.decipher = createDecipheriv("aes-256-ctr", key, nonce);
    this.hmac = createHmac("sha256", key);
    this.expectedHmac = hmac;
  }

  update(ct: Buffer): Buffer {
    this.hmac.update(ct);
    return this.decipher.update(ct);
  }

  /** Ciphertext that is only authenticated, not decrypted (the rest of a blob after a failure). */
  authenticate(ct: Buffer): void {
    this.hmac.update(ct);
  }

  finish(): void {
    this.decipher.final();
    const got = this.hmac.digest();
    if (got.length !== this.expectedHmac.length || !timingSafeEqual(got, this.expectedHmac))
      throw bad("layer HMAC mismatch (tampered or corrupt ciphertext)");
  }
}

/**
 * Opens an encrypted layer descriptor's annotations with the private keys: the decryptor, or
 * Forbidden naming the problem (no key given, no key fits).
 */
export function openEncryptedLayer(
  annotations: Record<string, unknown> | undefined,
  privateKeysPem: string[] | undefined,
  image: string,
): LayerDecryptor {
  if (!privateKeysPem || privateKeysPem.length === 0)
    throw new Ms2mError(
      "Forbidden",
      `checkpoint image ${image} is encrypted and no decryption key was given (spec.encryption.privateKeySecretRef)`,
      { retriable: false },
    );
  const keys = privateKeysPem.map((p) => parsePrivateKey(p));
  const jweAnn = annotations?.[ANNOTATION_JWE];
  const pubAnn = annotations?.[ANNOTATION_PUBOPTS];
  if (typeof jweAnn !== "string" || jweAnn.length > 1024 * 1024) throw bad(`no ${ANNOTATION_JWE} annotation`);
  let plain: Buffer | undefined;
  for (const part of jweAnn.split(",").slice(0, 16)) {
    plain = jweDecrypt(Buffer.from(part, "base64").toString("utf8"), keys);
    if (plain) break;
  }
  if (!plain)
    throw new Ms2mError(
      "Forbidden",
      `checkpoint image ${image} cannot be decrypted with the given private key (wrong key pair?)`,
      { retriable: false },
    );
  let priv: { symkey?: unknown; digest?: unknown; cipheroptions?: { nonce?: unknown } };
  let pub: { cipher?: unknown; hmac?: unknown };
  try {
    priv = JSON.parse(plain.toString("utf8")) as typeof priv;
    pub = JSON.parse(
      Buffer.from(typeof pubAnn === "string" ? pubAnn : "", "base64").toString("utf8"),
    ) as typeof pub;
  } catch {
    throw bad("layer options are not JSON");
  }
  const key = Buffer.from(String(priv.symkey ?? ""), "base64");
  const nonce = Buffer.from(String(priv.cipheroptions?.nonce ?? ""), "base64");
  const hmac = Buffer.from(String(pub.hmac ?? ""), "base64");
  if (pub.cipher !== CIPHER) throw bad(`cipher ${String(pub.cipher)} not supported (${CIPHER})`);
  if (key.length !== 32 || nonce.length !== 16 || hmac.length !== 32)
    throw bad("bad layer key, nonce or HMAC");
  if (typeof priv.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(priv.digest))
    throw bad("no plaintext digest in the layer options");
  return new LayerDecryptor(key, nonce, hmac, priv.digest);
}
