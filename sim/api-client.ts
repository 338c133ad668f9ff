// A small REST client for the API server with the kubelet's client certificate. The kubelet
// needs few calls (get/create/patch/delete, list+watch of its pods), and owning them keeps the
// patch content types and the watch stream explicit.
import { readFile } from "node:fs/promises";
import { Agent, request } from "undici";
import { Ms2mError, type StatusReason } from "../src/common/errors.ts";

export interface ApiClientOptions {
  server: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export type PatchType = "merge" | "strategic";

const patchTypes: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
};

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export class ApiClient {
  readonly server: string;
  private readonly agent: Agent;

  private constructor(server: string, agent: Agent) {
    this.server = server;
    this.agent = agent;
  }

  static async create(opts: ApiClientOptions): Promise<ApiClient> {
    const [ca, cert, key] = await Promise.all([
      readFile(opts.caFile),
      readFile(opts.certFile),
      readFile(opts.keyFile),
    ]);
    const agent = new Agent({ connect: { ca, cert, key }, connections: 16 });
    return new ApiClient(opts.server, agent);
  }

  async call<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    patchType: PatchType = "merge",
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined)
      headers["content-type"] = method === "PATCH" ? patchTypes[patchType] : "application/json";
    const res = await request(this.server + path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      dispatcher: this.agent,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw apiError(res.statusCode, text, `${method} ${path}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * Streams watch events until the server closes the stream or `signal` aborts. The caller
   * re-lists on 410 Gone (an ERROR event with code 410).
   */
  async *watch<T>(path: string, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    const res = await request(this.server + path, {
      method: "GET",
      dispatcher: this.agent,
      signal,
      headersTimeout: 30_000,
      bodyTimeout: 0, // a quiet watch is fine: the server times it out itself
    });
    if (res.statusCode !== 200) throw apiError(res.statusCode, await res.body.text(), `watch ${path}`);
    let buffered = "";
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) yield JSON.parse(line) as WatchEvent<T>;
      }
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

const reasonsByCode: Record<number, StatusReason> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  410: "Gone",
  422: "Invalid",
  429: "TooManyRequests",
  503: "ServiceUnavailable",
  504: "Timeout",
};

function apiError(code: number, body: string, what: string): Ms2mError {
  let message = body.slice(0, 500);
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // not a Status: keep the raw text
  }
  return new Ms2mError(reasonsByCode[code] ?? "InternalError", `${what}: ${code} ${message}`);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof Ms2mError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof Ms2mError && err.reason === "Conflict";
}
