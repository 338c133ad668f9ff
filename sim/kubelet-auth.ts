// Authentication and authorization of kubelet API requests, as the kubelet delegates them:
// x509 client certificates signed by the cluster CA, bearer tokens through TokenReview, and
// every request checked with a SubjectAccessReview on `nodes/<subresource>`. Results are cached
// as the kubelet's webhook caches do (authenticated 2 min, allowed 5 min, denied 30 s).
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { ApiClient } from "./api-client.ts";

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export interface RequestAttributes {
  verb: string;
  /** Subresources to try in order (fine-grained first, then proxy), as KubeletFineGrainedAuthz. */
  subresources: string[];
}

const verbs: Record<string, string> = {
  GET: "get",
  HEAD: "get",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

/** How the kubelet maps a request path to the `nodes` subresource it authorizes. */
export function requestAttributes(method: string, path: string): RequestAttributes {
  const verb = verbs[method] ?? "get";
  const under = (p: string) => path === p || path.startsWith(p + "/");
  if (under("/checkpoint")) return { verb, subresources: ["checkpoint"] };
  if (under("/stats")) return { verb, subresources: ["stats"] };
  if (under("/metrics")) return { verb, subresources: ["metrics"] };
  if (under("/logs")) return { verb, subresources: ["log"] };
  if (under("/pods")) return { verb, subresources: ["pods", "proxy"] };
  if (under("/healthz")) return { verb, subresources: ["healthz", "proxy"] };
  if (under("/configz")) return { verb, subresources: ["configz", "proxy"] };
  return { verb, subresources: ["proxy"] };
}

class TtlCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();

  get(key: string): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: T, ttlMs: number): void {
    if (this.entries.size > 10_000) this.entries.clear();
    this.entries.set(key, { value, expires: Date.now() + ttlMs });
  }
}

export class KubeletAuth {
  private readonly api: ApiClient;
  private readonly nodeName: string;
  private readonly tokens = new TtlCache<UserInfo | null>();
  private readonly decisions = new TtlCache<boolean>();

  constructor(api: ApiClient, nodeName: string) {
    this.api = api;
    this.nodeName = nodeName;
  }

  /** The caller, or undefined when unauthenticated (401). */
  async authenticate(req: IncomingMessage): Promise<UserInfo | undefined> {
    const socket = req.socket as TLSSocket;
    if (socket.authorized) {
      const cert = socket.getPeerCertificate();
      const cn = cert.subject?.CN;
      const o = cert.subject?.O;
      if (typeof cn === "string" && cn) {
        const orgs = o === undefined ? [] : Array.isArray(o) ? o : [o];
        return { username: cn, groups: [...orgs, "system:authenticated"] };
      }
    }
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) return undefined;
    return (await this.reviewToken(match[1])) ?? undefined;
  }

  private async reviewToken(token: string): Promise<UserInfo | null> {
    const key = createHash("sha256").update(token).digest("hex");
    const cached = this.tokens.get(key);
    if (cached !== undefined) return cached;
    const review = await this.api.call<{
      status?: {
        authenticated?: boolean;
        user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
      };
    }>("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token },
    });
    const u = review.status?.user;
    const user: UserInfo | null =
      review.status?.authenticated && u?.username
        ? {
            username: u.username,
            groups: u.groups ?? [],
            ...(u.uid ? { uid: u.uid } : {}),
            ...(u.extra ? { extra: u.extra } : {}),
          }
        : null;
    this.tokens.set(key, user, user ? 120_000 : 10_000);
    return user;
  }

  /** Whether `user` may do `attrs` on this node (any of the subresources allows). */
  async authorize(user: UserInfo, attrs: RequestAttributes): Promise<boolean> {
    for (const subresource of attrs.subresources) {
      if (await this.review(user, attrs.verb, subresource)) return true;
    }
    return false;
  }

  private async review(user: UserInfo, verb: string, subresource: string): Promise<boolean> {
    const key = JSON.stringify([user.username, user.uid, user.groups, verb, subresource]);
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const sar = await this.api.call<{ status?: { allowed?: boolean } }>(
      "POST",
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          groups: user.groups,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: {
            verb,
            group: "",
            version: "v1",
            resource: "nodes",
            subresource,
            name: this.nodeName,
          },
        },
      },
    );
    const allowed = sar.status?.allowed === true;
    this.decisions.set(key, allowed, allowed ? 300_000 : 30_000);
    return allowed;
  }
}
