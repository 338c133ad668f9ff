import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../exec.ts";

export interface CertPair {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  ca: CertPair;
  apiserver: CertPair;
  admin: CertPair;
  controllerManager: CertPair;
  scheduler: CertPair;
  /** The API server's client certificate towards kubelets (and the simulated ones). */
  apiserverKubeletClient: CertPair;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export interface CertRequest {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: "server" | "client" | "both";
}

/**
 * A throwaway PKI made with openssl: one CA signs every serving and client certificate.
 * EC P-256 keys keep generation fast; files are mode 0600.
 */
export class CertificateAuthority {
  readonly dir: string;
  readonly ca: CertPair;

  constructor(dir: string) {
    this.dir = dir;
    this.ca = { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await genKey(this.ca.key);
    await run("openssl", [
      "req",
      "-x509",
      "-new",
      "-key",
      this.ca.key,
      "-sha256",
      "-days",
      "3650",
      "-subj",
      "/CN=ms2m-test-ca",
      "-out",
      this.ca.cert,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
  }

  async issue(name: string, req: CertRequest): Promise<CertPair> {
    const pair = { cert: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
    await genKey(pair.key);
    const subject = [...(req.organizations ?? []).map((o) => `/O=${o}`), `/CN=${req.commonName}`].join("");
    const csr = join(this.dir, `${name}.csr`);
    await run("openssl", ["req", "-new", "-key", pair.key, "-subj", subject, "-out", csr]);
    const san = [
      ...(req.dnsNames ?? []).map((d) => `DNS:${d}`),
      ...(req.ipAddresses ?? []).map((ip) => `IP:${ip}`),
    ];
    const eku = { server: "serverAuth", client: "clientAuth", both: "serverAuth,clientAuth" }[req.usage];
    const ext = join(this.dir, `${name}.ext`);
    await writeFile(
      ext,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${eku}`,
        ...(san.length > 0 ? [`subjectAltName=${san.join(",")}`] : []),
      ].join("\n") + "\n",
    );
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      this.ca.cert,
      "-CAkey",
      this.ca.key,
      // A random serial per certificate: parallel issuing must not share a serial file.
      "-set_serial",
      `0x${randomBytes(16).toString("hex")}`,
      "-days",
      "365",
      "-sha256",
      "-extfile",
      ext,
      "-out",
      pair.cert,
    ]);
    return pair;
  }
}

async function genKey(path: string): Promise<void> {
  await run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
  await run("chmod", ["600", path]);
}

/** Every certificate the control plane needs. */
export async function createPki(dir: string, apiserverIp: string, serviceIp: string): Promise<Pki> {
  const authority = new CertificateAuthority(dir);
  await authority.init();
  const [apiserver, admin, controllerManager, scheduler, apiserverKubeletClient] = await Promise.all([
    authority.issue("apiserver", {
      commonName: "kube-apiserver",
      usage: "server",
      dnsNames: [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
      ],
      ipAddresses: [apiserverIp, serviceIp, "127.0.0.1"],
    }),
    authority.issue("admin", {
      commonName: "ms2m-admin",
      organizations: ["system:masters"],
      usage: "client",
    }),
    authority.issue("kube-controller-manager", {
      commonName: "system:kube-controller-manager",
      usage: "client",
    }),
    authority.issue("kube-scheduler", { commonName: "system:kube-scheduler", usage: "client" }),
    authority.issue("apiserver-kubelet-client", {
      commonName: "kube-apiserver-kubelet-client",
      usage: "client",
    }),
  ]);
  const serviceAccountKey = join(dir, "sa.key");
  const serviceAccountPub = join(dir, "sa.pub");
  await run("openssl", [
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-out",
    serviceAccountKey,
  ]);
  await run("openssl", ["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPub]);
  return {
    dir,
    ca: authority.ca,
    apiserver,
    admin,
    controllerManager,
    scheduler,
    apiserverKubeletClient,
    serviceAccountKey,
    serviceAccountPub,
  };
}
