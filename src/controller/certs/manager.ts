// Issues and rotates the agents' TLS material (leader only):
//  - Secret `<caSecretName>` (default ms2m-agent-ca): the signing CA, `tls.crt` + `tls.key`.
//    Only the controller reads it; the agents never see a CA key.
//  - Secret `<secretName>` (default ms2m-agent-tls, type kubernetes.io/tls): the agents' serving
//    certificate `tls.crt`/`tls.key` and the trust bundle `ca.crt` (signing CA + older CAs that
//    are still valid), mounted by the agents and read by the controller and Prometheus.
// Rotation by re-issue: the serving certificate is renewed when 1/3 of its lifetime is left;
// the CA likewise, and a new CA is first only *published* in ca.crt next to the old one; the
// serving certificate moves to the new CA once the bundle has had `caPropagationMs` to reach
// every pod (the kubelet syncs Secret volumes within about a minute). Writes use the
// resourceVersion read (optimistic concurrency): a Conflict/AlreadyExists restarts the pass.
// Nothing here logs a certificate or key; only fingerprints, dates and reasons.
import type { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { Logger } from "../../common/logger.ts";
import { describeError } from "../../common/errors.ts";
import { toMs2mError } from "../../kube/errors.ts";
import {
  fingerprint,
  isUsableCa,
  issueCa,
  issueServing,
  needsRenewal,
  notAfter,
  parseBundle,
  parseCert,
  parseKey,
  signedBy,
  type KeyPairPem,
} from "./pki.ts";

/** The name the agents' clients verify (AgentClient and agent-to-agent sends use it as servername). */
export { AGENT_SERVER_NAME } from "../../transfer/client.ts";
import { AGENT_SERVER_NAME } from "../../transfer/client.ts";

export interface StoredSecret {
  /** Decoded (UTF-8) values. */
  data: Record<string, string>;
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  type?: string;
  resourceVersion?: string;
}

/** The Secrets of one namespace. create → AlreadyExists, update with a stale resourceVersion → Conflict (Ms2mError). */
export interface SecretStore {
  get(name: string): Promise<StoredSecret | undefined>;
  create(name: string, secret: StoredSecret): Promise<StoredSecret>;
  update(name: string, secret: StoredSecret): Promise<StoredSecret>;
}

export const DAY_MS = 86_400_000;
export const PUBLISHED_ANNOTATION = "migration.ms2m.io/ca-published";
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "ms2m-controller" };

export interface AgentTlsOptions {
  store: SecretStore;
  /** Namespace of the agents (for the service-style SANs). */
  namespace: string;
  secretName?: string;
  caSecretName?: string;
  caLifetimeMs?: number;
  servingLifetimeMs?: number;
  /** Renew when less than this fraction of the lifetime is left (default 1/3). */
  renewFraction?: number;
  /** How long a new CA sits in the bundle before serving certificates are signed by it. */
  caPropagationMs?: number;
  /** How often the leader checks (default 1 h). */
  intervalMs?: number;
  now?: () => number;
  log?: Logger;
  /** Called with the trust bundle after every successful pass (the controller's own client). */
  onBundle?: (caBundle: string) => void;
}

export interface EnsureResult {
  caBundle: string;
  /** What was written, e.g. ["ca", "bundle", "serving"]; empty when everything was kept. */
  changed: string[];
  reasons: string[];
}

export function agentDnsNames(namespace: string): string[] {
  return [
    AGENT_SERVER_NAME,
    `${AGENT_SERVER_NAME}.${namespace}`,
    `${AGENT_SERVER_NAME}.${namespace}.svc`,
    `${AGENT_SERVER_NAME}.${namespace}.svc.cluster.local`,
  ];
}

const MAX_OLD_CAS = 3;
const ATTEMPTS = 5;

/** A serving certificate of its own CA, for any server: the names it is issued for and where it lives. */
export interface ServingTlsOptions extends Omit<AgentTlsOptions, "namespace"> {
  secretName: string;
  caSecretName: string;
  /** Subject CN, and the CA's name prefix. */
  commonName: string;
  /** The certificate's names: DNS names, or IP addresses. */
  names: string[];
  /** How log lines name it. */
  what: string;
}

const isIp = (name: string) => isIP(name) !== 0;

/**
 * Issues and rotates a server's TLS material (the agents', the eviction webhook's): a CA Secret
 * only the controller reads, and a `kubernetes.io/tls` Secret with the serving certificate and
 * the trust bundle (`ca.crt`) for its clients.
 */
export class ServingTlsManager {
  private readonly o: Required<Omit<ServingTlsOptions, "log" | "onBundle">> &
    Pick<ServingTlsOptions, "log" | "onBundle">;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private running: Promise<unknown> | undefined;

  constructor(options: ServingTlsOptions) {
    this.o = {
      caLifetimeMs: 365 * DAY_MS,
      servingLifetimeMs: 90 * DAY_MS,
      renewFraction: 1 / 3,
      caPropagationMs: 10 * 60_000,
      intervalMs: 60 * 60_000,
      now: () => Date.now(),
      ...options,
    };
  }

  /** Runs `ensure` now and then every `intervalMs` (1 min after a failure) until `stop`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = async () => {
      let next = this.o.intervalMs;
      try {
        await this.ensure();
      } catch (err) {
        next = Math.min(60_000, this.o.intervalMs);
        this.o.log?.error(
          { err: describeError(err), secret: this.o.secretName },
          `${this.o.what}: could not ensure the certificate`,
        );
      }
      if (!this.stopped) this.timer = setTimeout(() => void (this.running = tick()), next).unref();
    };
    this.running = tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass, retried on write conflicts with another replica. */
  async ensure(): Promise<EnsureResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.pass();
        if (result.changed.length > 0) {
          this.o.log?.info(
            { secret: this.o.secretName, changed: result.changed, reasons: result.reasons },
            `${this.o.what}: certificates updated`,
          );
        }
        this.o.onBundle?.(result.caBundle);
        return result;
      } catch (err) {
        const e = toMs2mError(err);
        if ((e.reason === "Conflict" || e.reason === "AlreadyExists") && attempt < ATTEMPTS) continue;
        throw e;
      }
    }
  }

  private async pass(): Promise<EnsureResult> {
    const { store, now: clock, renewFraction } = this.o;
    const now = clock();
    const changed: string[] = [];
    const reasons: string[] = [];
    const [caSecret, tlsSecret] = await Promise.all([
      store.get(this.o.caSecretName),
      store.get(this.o.secretName),
    ]);

    // 1. The signing CA.
    let ca: KeyPairPem | undefined;
    let caCert = parseCert(caSecret?.data["tls.crt"]);
    const caKey = parseKey(caSecret?.data["tls.key"]);
    const retired: X509Certificate[] = [];
    const caValid = caCert !== undefined && caKey !== undefined && isUsableCa(caCert, caKey, now);
    if (caValid && !needsRenewal(caCert!, now, renewFraction)) {
      ca = { cert: caSecret!.data["tls.crt"]!, key: caSecret!.data["tls.key"]! };
    } else {
      if (caValid) retired.push(caCert!);
      reasons.push(caValid ? "CA near expiry" : caSecret ? "CA missing or invalid" : "no CA");
      ca = await issueCa(`${this.o.commonName}-ca`, new Date(now), this.o.caLifetimeMs);
      caCert = parseCert(ca.cert)!;
      const body: StoredSecret = {
        data: { "tls.crt": ca.cert, "tls.key": ca.key },
        labels: { ...caSecret?.labels, ...MANAGED_BY },
        ...(caSecret?.annotations ? { annotations: caSecret.annotations } : {}),
        type: caSecret?.type ?? "kubernetes.io/tls",
      };
      if (caSecret)
        await store.update(this.o.caSecretName, { ...body, resourceVersion: caSecret.resourceVersion! });
      else await store.create(this.o.caSecretName, body);
      changed.push("ca");
    }
    const signing = caCert!;
    const signingFp = fingerprint(signing);

    // 2. The trust bundle: the signing CA first, then older CAs that are still valid.
    const published = parseBundle(tlsSecret?.data["ca.crt"]);
    const seen = new Set([signingFp]);
    const older: X509Certificate[] = [];
    for (const c of [...retired, ...published]) {
      const fp = fingerprint(c);
      if (seen.has(fp) || !c.ca || notAfter(c) <= now || !signedBy(c, c)) continue;
      seen.add(fp);
      older.push(c);
    }
    older.sort((a, b) => notAfter(b) - notAfter(a));
    const bundleCerts = [signing, ...older.slice(0, MAX_OLD_CAS)];
    const caBundle = bundleCerts.map((c) => c.toString().trim()).join("\n") + "\n";

    // When did the signing CA reach the published bundle?
    const annotation = tlsSecret?.annotations?.[PUBLISHED_ANNOTATION] ?? "";
    const [annFp, annTime] = annotation.split(" ");
    const inPublished = published.some((c) => fingerprint(c) === signingFp);
    const publishedAt =
      inPublished && annFp === signingFp && annTime && !Number.isNaN(Date.parse(annTime))
        ? Date.parse(annTime)
        : now;
    const propagated = inPublished && now - publishedAt >= this.o.caPropagationMs;

    // 3. The serving certificate.
    let serving: KeyPairPem | undefined;
    const cert = parseCert(tlsSecret?.data["tls.crt"]);
    const key = parseKey(tlsSecret?.data["tls.key"]);
    const hard = this.hardProblem(cert, key, bundleCerts, now);
    let soft: string | undefined;
    if (!hard && cert) {
      if (needsRenewal(cert, now, renewFraction)) soft = "serving certificate near expiry";
      else if (!signedBy(cert, signing)) soft = "serving certificate from the previous CA";
    }
    if (hard || (soft && propagated)) {
      reasons.push((hard ?? soft)!);
      serving = await issueServing(
        ca,
        this.o.commonName,
        this.o.names,
        new Date(now),
        this.o.servingLifetimeMs,
      );
      changed.push("serving");
    } else {
      serving = { cert: tlsSecret!.data["tls.crt"]!, key: tlsSecret!.data["tls.key"]! };
      if (soft) reasons.push(`${soft} (waiting for the new CA to propagate)`);
    }

    // 4. Write the agents' Secret when anything differs.
    const data = { "tls.crt": serving.cert, "tls.key": serving.key, "ca.crt": caBundle };
    const annotations = {
      ...tlsSecret?.annotations,
      [PUBLISHED_ANNOTATION]: `${signingFp} ${new Date(publishedAt).toISOString()}`,
    };
    const same =
      tlsSecret !== undefined &&
      Object.keys(tlsSecret.data).length === 3 &&
      Object.entries(data).every(([k, v]) => tlsSecret.data[k] === v) &&
      tlsSecret.annotations?.[PUBLISHED_ANNOTATION] === annotations[PUBLISHED_ANNOTATION];
    if (!same) {
      if (tlsSecret?.data["ca.crt"] !== caBundle) changed.push("bundle");
      const body: StoredSecret = {
        data,
        annotations,
        labels: { ...tlsSecret?.labels, ...MANAGED_BY },
        type: tlsSecret?.type ?? "kubernetes.io/tls",
      };
      if (tlsSecret)
        await store.update(this.o.secretName, { ...body, resourceVersion: tlsSecret.resourceVersion! });
      else await store.create(this.o.secretName, body);
      if (changed.length === 0) changed.push("metadata");
    }
    return { caBundle, changed, reasons };
  }

  /** Why the current serving certificate cannot be kept at all (undefined: it can). */
  private hardProblem(
    cert: X509Certificate | undefined,
    key: ReturnType<typeof parseKey>,
    trusted: X509Certificate[],
    now: number,
  ): string | undefined {
    if (!cert || !key) return "serving certificate or key missing or invalid";
    try {
      if (!cert.checkPrivateKey(key)) return "serving key does not match the certificate";
    } catch {
      return "serving key does not match the certificate";
    }
    if (!trusted.some((ca) => signedBy(cert, ca))) return "serving certificate not signed by a trusted CA";
    if (notAfter(cert) <= now) return "serving certificate expired";
    for (const name of this.o.names) {
      const named = isIp(name) ? cert.checkIP(name) === name : cert.checkHost(name) === name;
      if (!named) return `serving certificate does not name ${name}`;
    }
    return undefined;
  }
}

/** The agents' certificate (Secrets ms2m-agent-tls and ms2m-agent-ca by default). */
export class AgentTlsManager extends ServingTlsManager {
  constructor(options: AgentTlsOptions) {
    const { namespace, ...rest } = options;
    super({
      secretName: "ms2m-agent-tls",
      caSecretName: "ms2m-agent-ca",
      ...rest,
      commonName: AGENT_SERVER_NAME,
      names: agentDnsNames(namespace),
      what: "agent TLS",
    });
  }
}
