import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";

/** What a relay's control file asks for (JSON, written by `writeRelayControl`). */
export interface RelayControl {
  /** Until this instant (epoch ms) the relay refuses new connections and drops existing ones. */
  cutUntil?: number;
  /** Raised by one to drop every existing connection once (new ones are accepted). */
  dropSeq?: number;
}

/** The longest cut a control file can ask for: an outage always ends, even if its writer dies. */
export const MAX_RELAY_CUT_MS = 120_000;

/**
 * A TCP relay from the test network to a service that listens on loopback only (RabbitMQ on
 * 127.0.0.1:5672, a local registry): pods in node namespaces reach it at hostIp:port.
 *
 * With a control file, another process (a test file in a vitest worker) can simulate an outage
 * of the service for this cluster only, without touching the shared service: `cutUntil` resets
 * every connection and refuses new ones until then (at most MAX_RELAY_CUT_MS after the file was
 * written), `dropSeq`
 * resets every existing connection once (as `rabbitmqctl close_all_connections` would, but
 * only for this cluster). The file is polled every 50 ms.
 */
export class TcpRelay {
  readonly host: string;
  readonly port: number;
  private readonly server: Server;
  private readonly sockets: Set<Socket>;
  private readonly timer: NodeJS.Timeout | undefined;

  private constructor(
    host: string,
    port: number,
    server: Server,
    sockets: Set<Socket>,
    timer: NodeJS.Timeout | undefined,
  ) {
    this.host = host;
    this.port = port;
    this.server = server;
    this.sockets = sockets;
    this.timer = timer;
  }

  static async start(
    listen: { host: string; port: number },
    target: { host: string; port: number },
    options: { controlFile?: string } = {},
  ): Promise<TcpRelay> {
    const sockets = new Set<Socket>();
    let cutUntil = 0;
    let dropSeq: number | undefined;
    const dropAll = () => {
      for (const s of sockets) s.resetAndDestroy();
    };
    const server = createServer((inbound) => {
      if (Date.now() < cutUntil) {
        inbound.on("error", () => undefined);
        inbound.resetAndDestroy();
        return;
      }
      const outbound = connect(target.port, target.host);
      for (const s of [inbound, outbound]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    let timer: NodeJS.Timeout | undefined;
    const file = options.controlFile;
    if (file) {
      rmSync(file, { force: true });
      timer = setInterval(() => {
        const c = readRelayControl(file);
        const writtenAt = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
        if (c.dropSeq !== undefined && c.dropSeq !== dropSeq) {
          if (dropSeq !== undefined || c.dropSeq > 0) dropAll();
          dropSeq = c.dropSeq;
        }
        const now = Date.now();
        cutUntil = Math.min(c.cutUntil ?? 0, writtenAt + MAX_RELAY_CUT_MS);
        if (now < cutUntil) dropAll();
      }, 50);
      timer.unref();
    }
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    return new TcpRelay(listen.host, listen.port, server, sockets, timer);
  }

  /** Resets every connection through the relay now (new ones are accepted). */
  dropConnections(): void {
    for (const s of this.sockets) s.resetAndDestroy();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function readRelayControl(file: string): RelayControl {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as RelayControl;
  } catch {
    return {};
  }
}

/** Replaces the control file atomically (the relay never reads half a file). */
export function writeRelayControl(file: string, control: RelayControl): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(control));
  renameSync(tmp, file);
}
