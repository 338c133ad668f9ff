// The validating admission webhook on pods/eviction (config/webhook/): an AdmissionReview in,
// the answer of decide.ts out. Served by every controller replica over HTTPS with the
// certificate the leader keeps in a Secret (ServingTlsManager); the API server calls it with
// failurePolicy Ignore and a short timeout, so an unreachable webhook never blocks a drain.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../common/logger.ts";
import { describeError } from "../../common/errors.ts";
import type { EvictionAnswer } from "./decide.ts";

export const WEBHOOK_PATH = "/validate-eviction";
const MAX_BODY_BYTES = 1024 * 1024;

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  resource?: { group?: string; version?: string; resource?: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation?: string;
  dryRun?: boolean;
}

export type Decider = (namespace: string, pod: string, opts: { dryRun: boolean }) => Promise<EvictionAnswer>;

/** The AdmissionReview response for one request: what decide said, or allowed for anything else. */
export async function review(request: AdmissionRequest, decider: Decider, log: Logger): Promise<object> {
  const respond = (body: object) => ({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid: request.uid, ...body },
  });
  const isEviction =
    request.resource?.resource === "pods" &&
    request.subResource === "eviction" &&
    request.operation === "CREATE" &&
    !!request.name &&
    !!request.namespace;
  if (!isEviction) return respond({ allowed: true });
  let answer: EvictionAnswer;
  try {
    answer = await decider(request.namespace!, request.name!, { dryRun: request.dryRun === true });
  } catch (err) {
    // Not knowing is "not now": the eviction is retried, the pod is not lost to a cold restart.
    answer = {
      allowed: false,
      code: 429,
      reason: "TooManyRequests",
      message: `ms2m could not decide whether to migrate pod ${request.name} live (${describeError(err)}); retry the eviction`,
    };
  }
  log.info(
    {
      pod: `${request.namespace}/${request.name}`,
      allowed: answer.allowed,
      ...(answer.allowed ? { why: answer.why } : { code: answer.code, migration: answer.migration }),
    },
    "eviction reviewed",
  );
  if (answer.allowed) return respond({ allowed: true });
  return respond({
    allowed: false,
    status: { status: "Failure", code: answer.code, reason: answer.reason, message: answer.message },
  });
}

export interface EvictionWebhookOptions {
  port: number;
  host?: string;
  decider: Decider;
  log: Logger;
}

export class EvictionWebhook {
  private readonly o: EvictionWebhookOptions;
  private server: Server | undefined;
  private tls: { cert: string; key: string } | undefined;

  constructor(options: EvictionWebhookOptions) {
    this.o = options;
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  /** Serves with this certificate: starts listening on the first, swaps the context after. */
  async setTls(cert: string, key: string): Promise<void> {
    if (this.tls?.cert === cert && this.tls.key === key) return;
    this.tls = { cert, key };
    if (this.server) {
      this.server.setSecureContext({ cert, key });
      return;
    }
    const server = createServer(
      { cert, key, minVersion: "TLSv1.2" },
      (req, res) => void this.handle(req, res),
    );
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.o.port, this.o.host ?? "0.0.0.0", () => resolve());
    });
    this.server = server;
    this.o.log.info({ port: this.o.port }, "eviction webhook serving");
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (code: number, body: object) => {
      res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    if (req.method !== "POST" || req.url?.split("?")[0] !== WEBHOOK_PATH)
      return reply(404, { error: "not found" });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return reply(413, { error: "request too large" });
      chunks.push(chunk);
    }
    let request: AdmissionRequest | undefined;
    try {
      request = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { request?: AdmissionRequest })
        .request;
    } catch {
      request = undefined;
    }
    if (!request?.uid) return reply(400, { error: "not an AdmissionReview" });
    reply(200, await review(request, this.o.decider, this.o.log));
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
