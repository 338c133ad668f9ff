// A JSON client for the Kubernetes REST API (client-go's RESTClient / dynamic client): any resource
// by path, bodies and answers as plain JSON objects typed with client-node's interfaces. The
// generated API classes of client-node pass every body and answer through their model classes
// (ObjectSerializer walks the type map and copies each object, field by field) and weigh ~6 MB of
// the controller's bundle; the controller needs neither: it reads and writes plain objects.
// Authentication and the connection pool are the KubeConfig's (PooledKubeConfig). Failures throw
// client-node's ApiException, as the generated classes do, so errors.ts maps both the same way.
import type { HttpMethod } from "@kubernetes/client-node";
import {
  ApiException,
  RequestContext,
  type KubeConfig,
  type KubernetesObject,
  type V1ListMeta,
} from "@kubernetes/client-node";
import { request, type Dispatcher } from "undici";
import { FIELD_MANAGER } from "./patch.ts";

/** A resource (collection, object or subresource) of the API, as client-go's GroupVersionResource plus names. */
export interface ResourceRef {
  /** API group; "" or absent for the core group (/api/v1). */
  group?: string;
  version: string;
  /** Lower-case plural (pods, statefulmigrations). */
  plural: string;
  namespace?: string | undefined;
  /** Absent: the collection. */
  name?: string | undefined;
  /** status, eviction, token, ... */
  subresource?: string | undefined;
}

/** The request path of `ref`: /api/v1/namespaces/ns/pods/name/status, /apis/g/v/nodes, ... */
export function resourcePath(ref: ResourceRef): string {
  const base = ref.group ? `/apis/${ref.group}/${ref.version}` : `/api/${ref.version}`;
  const ns = ref.namespace !== undefined ? `/namespaces/${encodeURIComponent(ref.namespace)}` : "";
  const name = ref.name !== undefined ? `/${encodeURIComponent(ref.name)}` : "";
  const sub = ref.subresource !== undefined ? `/${ref.subresource}` : "";
  return `${base}${ns}/${ref.plural}${name}${sub}`;
}

export type PatchType = "json" | "merge" | "strategic" | "apply";

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
};

/** A list answer (PodList, StatefulMigrationList, PartialObjectMetadataList, ...). */
export interface ListOf<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ListMeta;
  items: T[];
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

/** Most an answer may hold (a list of every pod of a large cluster stays far below). */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export class KubeRest {
  private readonly kc: KubeConfig;
  private readonly fieldManager: string;

  constructor(kc: KubeConfig, opts: { fieldManager?: string } = {}) {
    this.kc = kc;
    this.fieldManager = opts.fieldManager ?? FIELD_MANAGER;
  }

  get<T extends object>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, { ...(query ? { query } : {}) });
  }

  /** `accept`: another representation (a PartialObjectMetadataList, kube/metadata.ts). */
  async list<T extends object = KubernetesObject>(
    path: string,
    query?: Query,
    accept?: string,
  ): Promise<ListOf<T>> {
    const list = await this.request<ListOf<T>>("GET", path, {
      ...(query ? { query } : {}),
      ...(accept ? { accept } : {}),
    });
    // An empty list of some kinds (PartialObjectMetadataList) says `"items": null`.
    list.items ??= [];
    return list;
  }

  create<T extends object>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>("POST", path, { body, query: this.writeQuery(query) });
  }

  replace<T extends object>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>("PUT", path, { body, query: this.writeQuery(query) });
  }

  patch<T extends object>(path: string, type: PatchType, body: unknown, query?: Query): Promise<T> {
    return this.request<T>("PATCH", path, {
      body,
      contentType: PATCH_CONTENT_TYPE[type],
      query: this.writeQuery(query),
    });
  }

  /** DELETE; `body` is a DeleteOptions (preconditions, propagationPolicy, ...). */
  delete<T extends object = KubernetesObject>(path: string, query?: Query, body?: unknown): Promise<T> {
    return this.request<T>("DELETE", path, {
      ...(query ? { query } : {}),
      ...(body !== undefined ? { body } : {}),
    });
  }

  /** One request; the answer's JSON, or ApiException with the API server's Status as body. */
  async request<T>(method: `${HttpMethod}`, path: string, opts: RequestOptions = {}): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error("No currently active cluster");
    const url = new URL(cluster.server.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    // The KubeConfig sets the credentials (a token read now: rotation is picked up) and the pooled dispatcher.
    const ctx = new RequestContext(url.toString(), method as HttpMethod);
    await this.kc.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = {
      ...ctx.getHeaders(),
      accept: opts.accept ?? "application/json",
    };
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers["content-type"] = opts.contentType ?? "application/json";
    }
    const dispatcher: Dispatcher | undefined = ctx.getDispatcher() as Dispatcher | undefined;
    const res = await request(url, {
      method,
      headers,
      ...(payload !== undefined ? { body: payload } : {}),
      ...(dispatcher ? { dispatcher } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const length = Number(res.headers["content-length"] ?? 0);
    if (length > MAX_RESPONSE_BYTES) {
      res.body.destroy();
      throw new ApiException(res.statusCode, `${method} ${path}: answer of ${length} bytes`, undefined, {});
    }
    const text = await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) return (text ? JSON.parse(text) : {}) as T;
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not a Status: the text as it came
    }
    throw new ApiException(res.statusCode, `${method} ${path}`, body, flatHeaders(res.headers));
  }

  private writeQuery(query: Query | undefined): Query {
    return { fieldManager: this.fieldManager, ...query };
  }
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}
