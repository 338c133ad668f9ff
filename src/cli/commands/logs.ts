// kubectl ms2m logs NAME: what happened to one migration, in time order: its Events and the
// controller's log lines about it (every controller pod's log, JSON lines whose `migration` is
// NAMESPACE/NAME, and whose `uid`, where a line has one, is this migration's: a name used again
// does not mix two migrations).
import { sleep } from "../../common/backoff.ts";
import type { Command } from "../command.ts";
import { getMigration, type Kube } from "../kube.ts";
import { paint, printObject, type Io } from "../output.ts";
import { isTerminal } from "../wait.ts";

export interface LogEntry {
  time: string;
  source: "event" | "controller";
  /** Event type (Normal, Warning) or log level (info, warn, ...). */
  level: string;
  /** Event reason, or the controller pod. */
  origin: string;
  message: string;
  /** A log line's other fields. */
  fields?: Record<string, unknown>;
}

const pinoLevels: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
/** Fields every line has or that name the migration: not repeated per line. */
const quiet = new Set(["level", "time", "pid", "hostname", "name", "msg", "migration", "uid", "controller"]);

/** The controller log lines (pino JSON) of one migration. */
export function controllerLines(text: string, pod: string, key: string, uid: string | undefined): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (l.migration !== key) continue;
    if (uid && typeof l.uid === "string" && l.uid !== uid) continue;
    const fields = Object.fromEntries(Object.entries(l).filter(([k]) => !quiet.has(k)));
    out.push({
      time: new Date(typeof l.time === "number" ? l.time : Date.parse(String(l.time))).toISOString(),
      source: "controller",
      level: pinoLevels[Number(l.level)] ?? String(l.level),
      origin: pod,
      message: String(l.msg ?? ""),
      ...(Object.keys(fields).length ? { fields } : {}),
    });
  }
  return out;
}

async function collect(kube: Kube, ns: string, name: string, controllerNs: string): Promise<LogEntry[]> {
  const m = await getMigration(kube, ns, name);
  const uid = m?.metadata.uid;
  const events = await kube.core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.kind=StatefulMigration,involvedObject.name=${name}`,
  });
  const entries: LogEntry[] = events.items
    .filter((e) => !uid || !e.involvedObject.uid || e.involvedObject.uid === uid)
    .map((e) => ({
      time: new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? 0).toISOString(),
      source: "event" as const,
      level: e.type ?? "Normal",
      origin: e.reason ?? "",
      message: e.message ?? "",
    }));
  const pods = await kube.core.listNamespacedPod({
    namespace: controllerNs,
    labelSelector: "app.kubernetes.io/name=ms2m-controller",
  });
  for (const p of pods.items) {
    const pod = p.metadata?.name ?? "";
    const text = await kube.core
      .readNamespacedPodLog({ name: pod, namespace: controllerNs, container: "controller" })
      .catch(() => "");
    entries.push(...controllerLines(String(text), pod, `${ns}/${name}`, uid));
  }
  return entries.sort((a, b) => a.time.localeCompare(b.time));
}

function render(io: Io, e: LogEntry): string {
  const level =
    e.level === "Warning" || e.level === "warn"
      ? paint(io, "yellow", e.level)
      : e.level === "error" || e.level === "fatal"
        ? paint(io, "red", e.level)
        : e.level;
  const source = e.source === "event" ? `event ${e.origin}` : `${e.origin}`;
  const fields = e.fields
    ? " " +
      Object.entries(e.fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ")
    : "";
  return `${e.time}  ${level.padEnd(7 + (level.length - e.level.length))}  ${paint(io, "gray", source)}  ${e.message}${paint(io, "gray", fields)}\n`;
}

export const logsCommand: Command = {
  name: "logs",
  summary: "Show a migration's Events and the controller's log lines about it, in time order",
  usage: "kubectl ms2m logs NAME [-f] [--controller-namespace NS]",
  description: `Merges the migration's Events with the lines of every controller pod's log that are about it
(the JSON lines whose migration is NAMESPACE/NAME and whose uid, where a line has one, is this
migration's: a name used again does not mix two migrations). The controller keeps these lines as
long as its pod's log does; Events expire after an hour by default.`,
  flags: `  -f, --follow                     keep printing until the migration ends
      --controller-namespace NS    where the controller runs (default ms2m-system)`,
  examples: `  kubectl ms2m logs consumer-to-node-b -n shop
  kubectl ms2m logs consumer-to-node-b -f
  kubectl ms2m logs consumer-to-node-b -o json`,
  exitCodes: {
    0: "shown",
    1: "no such migration and no Events of one by that name",
  },
  options: {
    follow: { type: "boolean", short: "f" },
    "controller-namespace": { type: "string" },
  },
  positionals: { min: 1, max: 1 },
  async run(ctx, [name], flags) {
    const kube = ctx.kube();
    const ns = kube.namespace;
    const { io } = ctx;
    const controllerNs = (flags["controller-namespace"] as string | undefined) ?? "ms2m-system";
    const first = await collect(kube, ns, name!, controllerNs);
    const m = await getMigration(kube, ns, name!);
    if (!m && first.length === 0)
      throw new Error(`statefulmigration ${ns}/${name} not found, and no Events of it`);
    if (ctx.format !== "human") {
      printObject(io, ctx.format, first);
      return 0;
    }
    const seen = new Set<string>();
    const show = (entries: LogEntry[]) => {
      for (const e of entries) {
        const key = JSON.stringify(e);
        if (seen.has(key)) continue;
        seen.add(key);
        io.out(render(io, e));
      }
    };
    show(first);
    if (first.length === 0) io.err(`no Events or controller log lines for ${ns}/${name} (yet)\n`);
    if (flags.follow) {
      for (let current = m; current && !isTerminal(current); current = await getMigration(kube, ns, name!)) {
        await sleep(1000);
        show(await collect(kube, ns, name!, controllerNs));
      }
      show(await collect(kube, ns, name!, controllerNs));
    }
    return 0;
  },
};
