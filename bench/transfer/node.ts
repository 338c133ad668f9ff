// One simulated node of the transfer benchmark, in its own process (as on a real node, the
// agent has its own event loop and memory): an ms2m-agent, plus — for the baseline — a raw
// HTTPS sink (target) or a raw HTTPS client (source). Driven over IPC by bench/transfer/run.ts.
import { createReadStream, createWriteStream, readFileSync, rmSync } from "node:fs";
import { createServer, request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { startAgent, type Pki, type TestAgent } from "../../tooling/agent-fixture.ts";

type Msg =
  | { cmd: "start"; host: string; pkiDir: string; env: Record<string, string> }
  | { cmd: "raw"; path: string; url: string; size: number; name: string }
  | { cmd: "sinkClean" }
  | {
      cmd: "record";
      migration: string;
      pod: string;
      container: string;
      archive: string;
      digest: string;
      size: number;
    }
  | { cmd: "rss" }
  | { cmd: "stop" };

const MB = 1024 * 1024;
let agent: TestAgent | undefined;
let pki: Pki;
let sinkDir = "";
let sinkServer: ReturnType<typeof createServer> | undefined;
let sinkCount = 0;

function loadPki(dir: string): Pki {
  const f = (n: string) => join(dir, n);
  return {
    dir,
    ca: readFileSync(f("ca.crt")),
    cert: readFileSync(f("tls.crt")),
    key: readFileSync(f("tls.key")),
    caFile: f("ca.crt"),
    certFile: f("tls.crt"),
    keyFile: f("tls.key"),
  };
}

/** Baseline client: the same bytes over HTTPS, read with the agent's buffer size, nothing else. */
function rawCopy(path: string, url: string, size: number, name: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: "POST",
        ca: pki.ca,
        servername: "ms2m-agent",
        headers: { "content-length": size, "x-name": name },
      },
      (res) => res.resume().on("end", () => resolve((performance.now() - t) / 1000)),
    );
    req.on("error", reject);
    createReadStream(path, { highWaterMark: MB }).pipe(req);
  });
}

async function handle(msg: Msg): Promise<unknown> {
  switch (msg.cmd) {
    case "start": {
      pki = loadPki(msg.pkiDir);
      agent = await startAgent(pki, { host: msg.host, env: msg.env });
      // baseline sink: HTTPS, writes the body to a file (0600), nothing else
      sinkDir = join(agent.root, "sink");
      const { mkdirSync } = await import("node:fs");
      mkdirSync(sinkDir, { mode: 0o700 });
      sinkServer = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
        const name = String(req.headers["x-name"] ?? `sink-${sinkCount++}`).replace(/[^\w.-]/g, "_");
        const out = createWriteStream(join(sinkDir, name), {
          mode: 0o600,
          highWaterMark: MB,
        });
        pipeline(req, out).then(
          () => res.end("ok"),
          () => res.end("err"),
        );
      });
      await new Promise<void>((r) => sinkServer!.listen(0, msg.host, r));
      return {
        url: agent.url,
        checkpointsDir: agent.checkpointsDir,
        store: agent.store,
        sinkUrl: `https://${msg.host}:${(sinkServer.address() as AddressInfo).port}/`,
        sinkDir,
      };
    }
    case "raw":
      return rawCopy(msg.path, msg.url, msg.size, msg.name);
    case "record":
      // What POST /v1/checkpoint records after the kubelet wrote the archive (sha256 and size
      // are computed then, during Checkpointing): the sends below are recorded sends.
      await agent!.agent.records.put({
        migration: msg.migration,
        namespace: "default",
        pod: msg.pod,
        container: msg.container,
        state: "Done",
        archive: msg.archive,
        digest: msg.digest,
        size: msg.size,
        createdAt: new Date().toISOString(),
      });
      return null;
    case "sinkClean":
      rmSync(sinkDir, { recursive: true, force: true });
      (await import("node:fs")).mkdirSync(sinkDir, { mode: 0o700 });
      return null;
    case "rss":
      return { maxRssMb: process.resourceUsage().maxRSS / 1024, rssMb: process.memoryUsage().rss / MB };
    case "stop":
      sinkServer?.close();
      await agent?.stop();
      return null;
  }
}

process.on("message", (m: { id: number; msg: Msg }) => {
  handle(m.msg).then(
    (result) => process.send!({ id: m.id, result }),
    (err: unknown) => process.send!({ id: m.id, error: String((err as Error)?.stack ?? err) }),
  );
});
process.on("disconnect", () => {
  sinkServer?.close();
  void (agent?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});
