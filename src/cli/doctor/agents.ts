// How doctor reaches an ms2m-agent from wherever it runs. The controller calls agents by pod IP;
// from a laptop that address is often not routed, so doctor falls back to a port-forward through
// the API server (pods/portforward: the TLS session and the token go end to end to the agent,
// which a proxy could not carry: the API server drops the Authorization header it authenticated).
// Either way it speaks to the agent as the controller does: TLS verified against the agents' CA
// (Secret ms2m-agent-tls) for the name ms2m-agent, and a token of the ms2m-controller
// ServiceAccount with audience ms2m-agent (TokenRequest), so the agent authorizes doctor exactly
// as it authorizes the controller.
import { connect as tcpConnect, createServer, type Server, type Socket } from "node:net";
import { PassThrough } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { AGENT_SERVER_NAME, AgentClient } from "../../transfer/client.ts";
import type { Kube } from "../kube.ts";

export type AgentAccessMode = "auto" | "pod-ip" | "port-forward";

export const AGENT_PORT = 9443;

/** Whether a TCP connection to host:port opens within `timeoutMs`. */
export function reachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** A local listener whose every connection is a port-forward to pod:port. */
class PortForwardListener {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<{ close(): void }>();
  port = 0;

  constructor(kc: k8s.KubeConfig, namespace: string, pod: string, targetPort: number) {
    const forward = new k8s.PortForward(kc, true);
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      const errors = new PassThrough();
      errors.on("data", () => socket.destroy());
      forward
        .portForward(namespace, pod, [targetPort], socket, errors, socket)
        .then((ws) => {
          const session = ws as unknown as { close(): void };
          this.sessions.add(session);
          socket.once("close", () => {
            this.sessions.delete(session);
            session.close();
          });
        })
        .catch(() => socket.destroy());
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => {
        const addr = this.server.address();
        this.port = typeof addr === "object" && addr ? addr.port : 0;
        resolve(this.port);
      });
    });
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface AgentEndpoint {
  url: string;
  /** How it was reached: the pod IP, or a port-forward. */
  via: "pod-ip" | "port-forward";
}

/** Agent URLs (by pod IP or through a port-forward) and a client that talks to them as the controller. */
export class AgentAccess {
  readonly client: AgentClient;
  private readonly kube: Kube;
  private readonly mode: AgentAccessMode;
  private readonly listeners: PortForwardListener[] = [];

  constructor(kube: Kube, options: { mode: AgentAccessMode; ca: string; token: string; timeoutMs: number }) {
    this.kube = kube;
    this.mode = options.mode;
    this.client = new AgentClient({
      ca: options.ca,
      servername: AGENT_SERVER_NAME,
      token: () => options.token,
      timeoutMs: options.timeoutMs,
    });
  }

  async endpoint(pod: k8s.V1Pod): Promise<AgentEndpoint> {
    const ip = pod.status?.podIP;
    if (this.mode !== "port-forward" && ip) {
      if (this.mode === "pod-ip" || (await reachable(ip, AGENT_PORT, 1500))) {
        return { url: `https://${ip.includes(":") ? `[${ip}]` : ip}:${AGENT_PORT}`, via: "pod-ip" };
      }
    }
    if (this.mode === "pod-ip") throw new Error(`pod ${pod.metadata?.name} has no IP yet`);
    const listener = new PortForwardListener(
      this.kube.kc,
      pod.metadata?.namespace ?? "",
      pod.metadata?.name ?? "",
      AGENT_PORT,
    );
    this.listeners.push(listener);
    const port = await listener.listen();
    return { url: `https://127.0.0.1:${port}`, via: "port-forward" };
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
    await Promise.all(this.listeners.splice(0).map((l) => l.close()));
  }
}
