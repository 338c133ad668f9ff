// The OTLP/HTTP exporter against a local HTTP receiver (it stands in for a tracing backend: the
// test checks the request a backend would get, per the OTLP/HTTP JSON specification).
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OtlpTraceExporter, otlpEnv, otlpExporterFrom } from "../../../src/controller/timeline/otlp.ts";
import { MigrationTrace } from "../../../src/controller/timeline/trace.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

const received: Received[] = [];
let status = 200;
const server = createServer((req, res) => {
  let raw = "";
  req.on("data", (c: Buffer) => (raw += c.toString("utf8")));
  req.on("end", () => {
    received.push({ path: req.url ?? "", headers: req.headers, body: JSON.parse(raw) });
    res.writeHead(status, { "content-type": "application/json" }).end("{}");
  });
});
let base = "";
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const migration: StatefulMigration = {
  apiVersion: "migration.ms2m.io/v1alpha1",
  kind: "StatefulMigration",
  metadata: { name: "mig", namespace: "shop", uid: "6f1c2d3e-4a5b-4c6d-8e7f-001122334455" },
  spec: {} as never,
  status: {
    phase: "Failed",
    failure: { phase: "Checkpointing", reason: "CheckpointFailed", message: "kubelet said no" },
    completionTime: new Date().toISOString(),
    phaseTimings: [{ phase: "Pending", startTime: new Date(Date.now() - 50).toISOString() }],
  },
};

describe("OTLP trace export", () => {
  it("POSTs the migration's spans as OTLP/HTTP JSON with the configured headers", async () => {
    const env = otlpEnv.parse({
      OTEL_EXPORTER_OTLP_ENDPOINT: base,
      OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20s3cret",
    });
    const exporter = otlpExporterFrom(env)!;
    const trace = new MigrationTrace(migration.metadata.uid!);
    await trace.span("kube.getPod", "api", () => new Promise((r) => setTimeout(r, 5)));
    exporter.export(migration, trace);
    await exporter.flush();
    expect(received).toHaveLength(1);
    const r = received[0]!;
    expect(r.path).toBe("/v1/traces");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers.authorization).toBe("Bearer s3cret");
    const body = r.body as {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: { spans: { name: string; traceId: string; status?: { code: number } }[] }[];
      }[];
    };
    const rs = body.resourceSpans[0]!;
    expect(rs.resource.attributes).toContainEqual({
      key: "service.name",
      value: { stringValue: "ms2m-controller" },
    });
    const spans = rs.scopeSpans[0]!.spans;
    expect(spans.map((s) => s.name)).toEqual(["StatefulMigration shop/mig", "Pending", "kube.getPod"]);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set(["6f1c2d3e4a5b4c6d8e7f001122334455"]));
    expect(spans[0]!.status).toEqual({ code: 2, message: "CheckpointFailed: kubelet said no" });
  });

  it("survives a backend that refuses or is gone (a log line, no exception)", async () => {
    status = 503;
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, msg: string) => warnings.push(msg) } as never;
    const refusing = new OtlpTraceExporter({ url: `${base}/v1/traces`, log });
    refusing.export(migration, new MigrationTrace("u"));
    await refusing.flush();
    const gone = new OtlpTraceExporter({ url: "http://127.0.0.1:1/v1/traces", log, timeoutMs: 2000 });
    gone.export(migration, new MigrationTrace("u"));
    await gone.flush();
    expect(warnings).toEqual(["OTLP trace export failed", "OTLP trace export failed"]);
    status = 200;
  });

  it("rejects a protocol it does not speak at startup, saying what to set", () => {
    const r = otlpEnv.safeParse({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain("only http/json is supported");
  });
});
