// X.509 for the agents' TLS: a CA and a serving certificate, EC P-256, made with @peculiar/x509
// on WebCrypto (never openssl). Checks (key match, signature, expiry, host) use node:crypto's
// X509Certificate. Private keys are PKCS#8 PEM; nothing here logs key material.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, createPrivateKey, webcrypto, type KeyObject } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
/** Backdating of notBefore, for clocks of other nodes that run a little behind. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export interface KeyPairPem {
  /** Certificate, PEM. */
  cert: string;
  /** PKCS#8 private key, PEM. */
  key: string;
}

function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive, no leading zero byte
  return Buffer.from(bytes).toString("hex");
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(
    der.buffer.slice(der.byteOffset, der.byteOffset + der.byteLength),
    "PRIVATE KEY",
  );
}

/** A self-signed CA valid from now (backdated by CLOCK_SKEW_MS) for `lifetimeMs`. */
export async function issueCa(commonName: string, now: Date, lifetimeMs: number): Promise<KeyPairPem> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + lifetimeMs),
    signingAlgorithm: EC,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString("pem"), key: await pkcs8Pem(keys.privateKey) };
}

/**
 * A serving certificate (serverAuth) for `dnsNames`, signed by `ca`. Its notAfter never
 * passes the CA's.
 */
export async function issueServing(
  ca: KeyPairPem,
  commonName: string,
  dnsNames: string[],
  now: Date,
  lifetimeMs: number,
): Promise<KeyPairPem> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey(
    "pkcs8",
    createPrivateKey(ca.key).export({ type: "pkcs8", format: "der" }),
    { name: EC.name, namedCurve: EC.namedCurve },
    false,
    ["sign"],
  );
  const keys = await newKeys();
  const notAfter = Math.min(now.getTime() + lifetimeMs, caCert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(Math.max(now.getTime() - CLOCK_SKEW_MS, caCert.notBefore.getTime())),
    notAfter: new Date(notAfter),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        dnsNames.map((value) => ({ type: isIP(value) ? ("ip" as const) : ("dns" as const), value })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString("pem"), key: await pkcs8Pem(keys.privateKey) };
}

/** Every certificate in a PEM bundle that parses; garbage yields an empty list. */
export function parseBundle(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const block of blocks) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      // skip unparsable blocks
    }
  }
  return out;
}

/** The single certificate in `pem`, or undefined when it is missing, garbage or more than one. */
export function parseCert(pem: string | undefined): X509Certificate | undefined {
  const certs = parseBundle(pem);
  return certs.length === 1 ? certs[0] : undefined;
}

export function parseKey(pem: string | undefined): KeyObject | undefined {
  if (!pem) return undefined;
  try {
    const key = createPrivateKey(pem);
    return key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1"
      ? key
      : undefined;
  } catch {
    return undefined;
  }
}

export const notAfter = (c: X509Certificate) => new Date(c.validTo).getTime();
export const notBefore = (c: X509Certificate) => new Date(c.validFrom).getTime();

/** True when less than `fraction` of the certificate's lifetime is left at `now` (or it is not valid). */
export function needsRenewal(c: X509Certificate, now: number, fraction: number): boolean {
  const start = notBefore(c);
  const end = notAfter(c);
  if (now < start - CLOCK_SKEW_MS || now >= end) return true;
  return end - now < (end - start) * fraction;
}

/** A CA: self-signed, basicConstraints CA:TRUE, `key` is its private key, valid at `now`. */
export function isUsableCa(cert: X509Certificate, key: KeyObject, now: number): boolean {
  try {
    return (
      cert.ca &&
      cert.checkPrivateKey(key) &&
      cert.verify(cert.publicKey) &&
      notBefore(cert) <= now + CLOCK_SKEW_MS &&
      now < notAfter(cert)
    );
  } catch {
    return false;
  }
}

/** Whether `cert` was signed by `issuer` (and names it as issuer). */
export function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** SHA-256 fingerprint, used to compare certificates without logging them. */
export const fingerprint = (c: X509Certificate) => c.fingerprint256;
