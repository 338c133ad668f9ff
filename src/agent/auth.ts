// Authentication and authorisation of every caller of the agent.
//
// Callers (the controller, other agents) present a projected ServiceAccount token whose
// audience is "ms2m-agent". The agent checks it with a TokenReview (audience-bound, so an
// API-server token is not accepted here and an agent token is useless against the API server),
// then asks a SubjectAccessReview whether that user may `create` (`get` for the read-only
// runtime) the subresource of the virtual resource `agents.migration.ms2m.io` named after this node:
//   receive    — push an archive into this node (direct mode; granted to agents)
//   send       — send a local checkpoint to another agent or a registry (controller)
//   pull       — pull a checkpoint image from the registry into this node (controller)
//   checkpoint — ask this node's kubelet for a checkpoint (controller)
//   runtime    — read what this node's container runtime is configured to do (`get`; controller)
// RBAC needs no CRD for that: a ClusterRole rule on resources ["agents/receive"] etc. is enough,
// and resourceNames can pin a caller to nodes.
import { createHash } from "node:crypto";
import { Ms2mError } from "../common/errors.ts";

export const AGENT_AUDIENCE = "ms2m-agent";
export const AGENT_API_GROUP = "migration.ms2m.io";
export const AGENT_RESOURCE = "agents";

export type AgentOperation = "receive" | "send" | "pull" | "checkpoint" | "runtime";

/** The SubjectAccessReview verb of an operation: reads are `get`, commands `create`. */
export const verbOf = (op: AgentOperation): AccessAttributes["verb"] => (op === "runtime" ? "get" : "create");

export interface UserInfo {
  username: string;
  uid?: string | undefined;
  groups?: string[] | undefined;
  extra?: Record<string, string[]> | undefined;
}

export interface AccessAttributes {
  group: string;
  resource: string;
  subresource: AgentOperation;
  verb: "create" | "get";
  /** The node this agent runs on. */
  name: string;
}

/** What the agent needs from the API server; the fake in tests implements the same. */
export interface Reviewer {
  /** TokenReview: the user, or null when the token is not valid for `audience`. */
  authenticate(token: string, audience: string): Promise<UserInfo | null>;
  /** SubjectAccessReview: whether `user` may do `attrs`. */
  authorize(user: UserInfo, attrs: AccessAttributes): Promise<boolean>;
}

export interface Principal {
  user: UserInfo;
  /** namespace/name of the ServiceAccount. */
  serviceAccount: string;
}

interface CacheEntry {
  expires: number;
  principal: Principal | null;
  error?: Ms2mError;
}

/**
 * Checks bearer tokens with a Reviewer and caches decisions briefly (keyed by the token's
 * sha256 and the operation; bounded size) so a burst of requests costs one review.
 */
export class Authenticator {
  private readonly reviewer: Reviewer;
  private readonly nodeName: string;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly cache = new Map<string, CacheEntry>();

  constructor(reviewer: Reviewer, nodeName: string, options: { ttlMs?: number; maxEntries?: number } = {}) {
    this.reviewer = reviewer;
    this.nodeName = nodeName;
    this.ttlMs = options.ttlMs ?? 10_000;
    this.maxEntries = options.maxEntries ?? 1000;
  }

  /** Throws 401/403/503 Ms2mErrors; resolves with the caller otherwise. */
  async check(authorization: string | undefined, op: AgentOperation): Promise<Principal> {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/.exec(authorization ?? "");
    if (!match) throw new Ms2mError("Unauthorized", "a bearer token is required");
    const token = match[1]!;
    const key = `${op}:${createHash("sha256").update(token).digest("hex")}`;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) {
      if (hit.error) throw hit.error;
      return hit.principal!;
    }
    let entry: CacheEntry;
    try {
      entry = { expires: now + this.ttlMs, principal: await this.review(token, op) };
    } catch (err) {
      if (!(err instanceof Ms2mError) || err.reason === "ServiceUnavailable") throw err; // never cache outages
      entry = { expires: now + this.ttlMs, principal: null, error: err };
    }
    if (this.cache.size >= this.maxEntries) {
      for (const [k, v] of this.cache)
        if (v.expires <= now || this.cache.size >= this.maxEntries) this.cache.delete(k);
    }
    this.cache.set(key, entry);
    if (entry.error) throw entry.error;
    return entry.principal!;
  }

  private async review(token: string, op: AgentOperation): Promise<Principal> {
    let user: UserInfo | null;
    try {
      user = await this.reviewer.authenticate(token, AGENT_AUDIENCE);
    } catch (err) {
      throw new Ms2mError("ServiceUnavailable", "token review unavailable", { cause: err });
    }
    if (!user) throw new Ms2mError("Unauthorized", "invalid or expired token");
    const sa = /^system:serviceaccount:([a-z0-9-]{1,63}):([a-z0-9.-]{1,253})$/.exec(user.username);
    if (!sa)
      throw new Ms2mError("Forbidden", `only ServiceAccounts may call the agent, not ${user.username}`);
    let allowed: boolean;
    try {
      allowed = await this.reviewer.authorize(user, {
        group: AGENT_API_GROUP,
        resource: AGENT_RESOURCE,
        subresource: op,
        verb: verbOf(op),
        name: this.nodeName,
      });
    } catch (err) {
      throw new Ms2mError("ServiceUnavailable", "access review unavailable", { cause: err });
    }
    if (!allowed) {
      throw new Ms2mError(
        "Forbidden",
        `${user.username} may not ${verbOf(op)} ${AGENT_RESOURCE}/${op} (${AGENT_API_GROUP}) on node ${this.nodeName}`,
      );
    }
    return { user, serviceAccount: `${sa[1]}/${sa[2]}` };
  }
}
