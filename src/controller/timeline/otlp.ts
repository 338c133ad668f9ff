// Exports a finished migration's trace as OpenTelemetry spans over OTLP/HTTP with the JSON
// encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp), configured by the standard
// OTEL_EXPORTER_OTLP_* variables. One root span per migration (trace id = its UID), a child
// per phase, and under each phase the controller's operations and waits. Best effort: a backend
// that is down or slow costs a log line, never a migration.
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import type { TraceExporter } from "../context.ts";
import { EXTERNAL_KINDS, type MigrationTrace, type Span } from "./trace.ts";

export const otlpEnv = z.object({
  /** Base URL of an OTLP/HTTP receiver; traces go to `<it>/v1/traces`. Unset: no export. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** Full URL for traces (wins over OTEL_EXPORTER_OTLP_ENDPOINT). */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  /** `key=value,key2=value2` (URL-encoded values), e.g. an authorization header. Never logged. */
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  /** Only the JSON encoding over HTTP is implemented. */
  OTEL_EXPORTER_OTLP_PROTOCOL: z
    .literal("http/json", {
      error: "only http/json is supported (set OTEL_EXPORTER_OTLP_PROTOCOL=http/json or leave it unset)",
    })
    .optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default("ms2m-controller"),
});
export type OtlpEnv = z.infer<typeof otlpEnv>;

/** The traces URL the environment names, or undefined when export is off. */
export function tracesUrl(
  e: Pick<OtlpEnv, "OTEL_EXPORTER_OTLP_ENDPOINT" | "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT">,
) {
  if (e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (e.OTEL_EXPORTER_OTLP_ENDPOINT) return `${e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return undefined;
}

export function parseHeaders(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (raw ?? "").split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    out[decodeURIComponent(part.slice(0, i).trim())] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

type AnyValue = { stringValue: string } | { intValue: string } | { boolValue: boolean };
interface KeyValue {
  key: string;
  value: AnyValue;
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 1 INTERNAL, 3 CLIENT. */
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  /** code 2 = ERROR. */
  status?: { code: number; message?: string };
}

const attr = (key: string, v: string | number | boolean): KeyValue => ({
  key,
  value:
    typeof v === "string"
      ? { stringValue: v }
      : typeof v === "boolean"
        ? { boolValue: v }
        : { intValue: String(Math.round(v)) },
});
const nanos = (ms: number): string => (BigInt(Math.round(ms * 1000)) * 1000n).toString();
const newSpanId = () => randomBytes(8).toString("hex");

/** The request body for one migration: root span, phase spans, operation spans. */
export function toOtlp(m: StatefulMigration, trace: MigrationTrace, serviceName: string) {
  const s = m.status ?? {};
  const timings = s.phaseTimings ?? [];
  const first = timings[0]?.startTime ? Date.parse(timings[0].startTime) : trace.since;
  const last = s.completionTime ? Date.parse(s.completionTime) : trace.now();
  const rootId = newSpanId();
  const common = [
    attr("k8s.namespace.name", m.metadata.namespace ?? ""),
    attr("ms2m.migration.name", m.metadata.name ?? ""),
    attr("ms2m.migration.uid", m.metadata.uid ?? ""),
  ];
  const spans: OtlpSpan[] = [
    {
      traceId: trace.traceId,
      spanId: rootId,
      name: `StatefulMigration ${m.metadata.namespace}/${m.metadata.name}`,
      kind: 1,
      startTimeUnixNano: nanos(first),
      endTimeUnixNano: nanos(last),
      attributes: [
        ...common,
        attr("ms2m.phase", s.phase ?? ""),
        ...(s.strategy ? [attr("ms2m.strategy", s.strategy)] : []),
        ...(s.transferMode ? [attr("ms2m.transfer_mode", s.transferMode)] : []),
      ],
      ...(s.phase === "Failed"
        ? { status: { code: 2, message: s.failure ? `${s.failure.reason}: ${s.failure.message}` : "Failed" } }
        : {}),
    },
  ];
  const phases = timings.map((t) => ({
    id: newSpanId(),
    start: Date.parse(t.startTime),
    end: t.endTime ? Date.parse(t.endTime) : last,
    timing: t,
  }));
  for (const p of phases) {
    const b = p.timing.breakdown;
    spans.push({
      traceId: trace.traceId,
      spanId: p.id,
      parentSpanId: rootId,
      name: p.timing.phase,
      kind: 1,
      startTimeUnixNano: nanos(p.start),
      endTimeUnixNano: nanos(p.end),
      attributes: [
        ...common,
        ...(b
          ? [
              attr("ms2m.controller_ms", b.controllerMillis),
              attr("ms2m.external_ms", b.externalMillis),
              attr("ms2m.api_calls", b.apiCalls),
            ]
          : []),
      ],
    });
  }
  const parentOf = (span: Span) =>
    phases.find((p) => span.start >= p.start && span.start < p.end)?.id ?? rootId;
  for (const span of trace.spans) {
    spans.push({
      traceId: trace.traceId,
      spanId: span.spanId,
      parentSpanId: parentOf(span),
      name: span.name,
      kind: span.kind === "api" || EXTERNAL_KINDS.has(span.kind) ? 3 : 1,
      startTimeUnixNano: nanos(span.start),
      endTimeUnixNano: nanos(span.end),
      attributes: [attr("ms2m.span.kind", span.kind), attr("ms2m.external", EXTERNAL_KINDS.has(span.kind))],
      ...(span.error ? { status: { code: 2, message: span.error } } : {}),
    });
  }
  return {
    resourceSpans: [
      {
        resource: { attributes: [attr("service.name", serviceName)] },
        scopeSpans: [{ scope: { name: "ms2m.io/controller" }, spans }],
      },
    ],
  };
}

export class OtlpTraceExporter implements TraceExporter {
  readonly url: string;
  readonly #headers: Record<string, string>;
  readonly #service: string;
  readonly #log: Logger | undefined;
  readonly #timeoutMs: number;
  /** Exports in flight (flush() waits for them; bounded so a dead backend cannot pile them up). */
  readonly #inflight = new Set<Promise<void>>();

  constructor(opts: {
    url: string;
    headers?: Record<string, string>;
    serviceName?: string;
    log?: Logger;
    timeoutMs?: number;
  }) {
    this.url = opts.url;
    this.#headers = opts.headers ?? {};
    this.#service = opts.serviceName ?? "ms2m-controller";
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  export(m: StatefulMigration, trace: MigrationTrace): void {
    if (this.#inflight.size >= 64) {
      this.#log?.warn({ migration: m.metadata.name }, "OTLP export skipped: 64 exports in flight");
      return;
    }
    const body = JSON.stringify(toOtlp(m, trace, this.#service));
    const p = this.#post(body)
      .catch((err: unknown) => {
        this.#log?.warn({ err: describeError(err), migration: m.metadata.name }, "OTLP trace export failed");
      })
      .finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  async #post(body: string): Promise<void> {
    const res = await fetch(this.url, {
      method: "POST",
      headers: { ...this.#headers, "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    if (!res.ok) throw new Error(`OTLP receiver answered ${res.status} ${res.statusText}`);
    await res.arrayBuffer();
  }

  /** Waits for the exports in flight (shutdown, tests). */
  async flush(): Promise<void> {
    await Promise.all([...this.#inflight]);
  }
}

/** The exporter the environment configures, or undefined. */
export function otlpExporterFrom(e: OtlpEnv, log?: Logger): OtlpTraceExporter | undefined {
  const url = tracesUrl(e);
  if (!url) return undefined;
  return new OtlpTraceExporter({
    url,
    headers: parseHeaders(e.OTEL_EXPORTER_OTLP_HEADERS),
    serviceName: e.OTEL_SERVICE_NAME,
    ...(log ? { log } : {}),
  });
}
