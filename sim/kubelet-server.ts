// The kubelet API on <node IP>:10250 over HTTPS: /checkpoint (upstream semantics), /pods,
// /healthz and /containerLogs (so `kubectl logs` works through the API server).
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Logger } from "../src/common/logger.ts";
import { CheckpointNotFound, type Checkpointer } from "./checkpoint.ts";
import { requestAttributes, type KubeletAuth } from "./kubelet-auth.ts";
import type { PodManager } from "./pod-manager.ts";

/** The runtime default when `timeout` is unset or 0 (CRI-O's is in the minutes). */
const DEFAULT_CHECKPOINT_TIMEOUT_MS = 4 * 60_000;

export interface KubeletServerOptions {
  host: string;
  port: number;
  caFile: string;
  certFile: string;
  keyFile: string;
  auth: KubeletAuth;
  pods: PodManager;
  checkpointer: Checkpointer;
  log: Logger;
}

function text(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, { "content-type": "text/plain; charset=utf-8" }).end(body);
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
}

export async function startKubeletServer(opts: KubeletServerOptions): Promise<Server> {
  const [ca, cert, key] = await Promise.all([
    readFile(opts.caFile),
    readFile(opts.certFile),
    readFile(opts.keyFile),
  ]);
  // Client certificates are optional (tokens are the other way in) but verified when sent.
  const server = createServer({ ca, cert, key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    handle(opts, req, res).catch((err: unknown) => {
      opts.log.error({ err, url: req.url }, "kubelet API request failed");
      if (!res.headersSent) text(res, 500, `Internal Error: ${(err as Error).message}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}

async function handle(opts: KubeletServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "https://kubelet");
  const method = req.method ?? "GET";
  const user = await opts.auth.authenticate(req);
  if (!user) return text(res, 401, "Unauthorized");
  const attrs = requestAttributes(method, url.pathname);
  if (!(await opts.auth.authorize(user, attrs))) {
    return text(
      res,
      403,
      `Forbidden (user=${user.username}, verb=${attrs.verb}, resource=nodes, subresource(s)=[${attrs.subresources.join(" ")}])`,
    );
  }
  req.resume();
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);

  if (url.pathname === "/healthz") return text(res, 200, "ok");

  if (url.pathname === "/pods" || url.pathname === "/pods/") {
    if (method !== "GET") return text(res, 405, "Method Not Allowed");
    return json(res, 200, {
      kind: "PodList",
      apiVersion: "v1",
      metadata: {},
      items: opts.pods.list().map((w) => w.current),
    });
  }

  if (parts[0] === "checkpoint") {
    if (parts.length !== 4) return text(res, 404, "404 page not found");
    if (method !== "POST") return text(res, 405, "Method Not Allowed");
    const [, ns = "", pod = "", container = ""] = parts;
    let timeoutMs = DEFAULT_CHECKPOINT_TIMEOUT_MS;
    const raw = url.searchParams.get("timeout");
    if (raw !== null) {
      // Upstream: an unparsable timeout makes the route not match, hence 404.
      if (!/^\d+$/.test(raw)) return text(res, 404, "404 page not found");
      if (Number(raw) > 0) timeoutMs = Number(raw) * 1000;
    }
    if (!opts.pods.find(ns, pod)) return text(res, 404, "pod does not exist");
    try {
      const path = await opts.checkpointer.checkpoint(ns, pod, container, timeoutMs);
      return json(res, 200, { items: [path] });
    } catch (err) {
      if (err instanceof CheckpointNotFound) return text(res, 404, `container ${container} does not exist`);
      return text(res, 500, `checkpointing of ${ns}/${pod}/${container} failed (${(err as Error).message})`);
    }
  }

  if (parts[0] === "containerLogs" && parts.length === 4 && method === "GET") {
    const [, ns = "", pod = "", container = ""] = parts;
    const file = opts.pods.find(ns, pod)?.logFile(container);
    if (!file) return text(res, 404, `container ${container} in pod ${ns}/${pod} not found`);
    let body = await readFile(file, "utf8").catch(() => "");
    const tail = Number(url.searchParams.get("tailLines") ?? "NaN");
    if (Number.isInteger(tail) && tail >= 0) {
      const lines = body.split("\n");
      if (lines.at(-1) === "") lines.pop();
      body = lines.slice(Math.max(0, lines.length - tail)).join("\n") + (lines.length ? "\n" : "");
    }
    return text(res, 200, body);
  }

  return text(res, 404, "404 page not found");
}
