// The node's control API for tests and `make cluster-up`: HTTP over a unix socket in the node
// folder (mode 0600), so any process on the host can steer any node, whatever its network
// namespace. JSON in, JSON out.
import { chmod, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { z } from "zod";
import { imageCommandSchema, latencySchema } from "./config.ts";

export interface ControlHandlers {
  status(): Promise<unknown>;
  setLatencies(l: Partial<z.infer<typeof latencySchema>>): void;
  setImages(map: Record<string, z.infer<typeof imageCommandSchema>>): void;
  preload(image: string): Promise<void>;
  setReady(ready: boolean, reason?: string, message?: string): Promise<void>;
  pauseHeartbeats(paused: boolean): Promise<void>;
  shutdown(): void;
}

const readySchema = z.object({
  ready: z.boolean(),
  reason: z.string().optional(),
  message: z.string().optional(),
});

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 1 << 20) throw new Error("body too large");
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : {};
}

function reply(res: ServerResponse, code: number, value: unknown): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify(value));
}

export async function startControlServer(socketPath: string, h: ControlHandlers): Promise<Server> {
  await rm(socketPath, { force: true });
  const server = createServer((req, res) => {
    const route = `${req.method} ${req.url}`;
    (async () => {
      switch (route) {
        case "GET /status":
          return reply(res, 200, await h.status());
        case "PUT /latencies":
          h.setLatencies(latencySchema.partial().parse(await body(req)));
          return reply(res, 200, {});
        case "PUT /images":
          h.setImages(z.record(z.string(), imageCommandSchema).parse(await body(req)));
          return reply(res, 200, {});
        case "POST /images/preload":
          await h.preload(z.object({ image: z.string() }).parse(await body(req)).image);
          return reply(res, 200, {});
        case "PUT /ready": {
          const r = readySchema.parse(await body(req));
          await h.setReady(r.ready, r.reason, r.message);
          return reply(res, 200, {});
        }
        case "PUT /heartbeats":
          await h.pauseHeartbeats(z.object({ paused: z.boolean() }).parse(await body(req)).paused);
          return reply(res, 200, {});
        case "POST /shutdown":
          reply(res, 202, {});
          h.shutdown();
          return;
        default:
          return reply(res, 404, { error: `no route ${route}` });
      }
    })().catch((err: unknown) => reply(res, 400, { error: (err as Error).message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  return server;
}
