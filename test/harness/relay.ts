import { createServer, connect, type Server, type Socket } from "node:net";

/**
 * A TCP relay from the test network to a service that listens on loopback only (RabbitMQ on
 * 127.0.0.1:5672, a local registry): pods in node namespaces reach it at hostIp:port.
 */
export class TcpRelay {
  readonly host: string;
  readonly port: number;
  private readonly server: Server;
  private readonly sockets: Set<Socket>;

  private constructor(host: string, port: number, server: Server, sockets: Set<Socket>) {
    this.host = host;
    this.port = port;
    this.server = server;
    this.sockets = sockets;
  }

  static async start(
    listen: { host: string; port: number },
    target: { host: string; port: number },
  ): Promise<TcpRelay> {
    const sockets = new Set<Socket>();
    const server = createServer((inbound) => {
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
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    return new TcpRelay(listen.host, listen.port, server, sockets);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
