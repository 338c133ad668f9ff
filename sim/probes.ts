// Readiness probes: httpGet, tcpSocket and exec, run against the node's address (pods share
// the node's network namespace in the simulator).
import { execFile } from "node:child_process";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import type { V1Container, V1Probe } from "@kubernetes/client-node";

function resolvePort(container: V1Container, port: number | string | undefined): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  if (named) return named.containerPort;
  const n = Number(port);
  if (Number.isInteger(n) && n > 0) return n;
  throw new Error(`unknown port ${String(port)}`);
}

/** Runs a probe once: true when it succeeds. */
export function probeOnce(
  probe: V1Probe,
  container: V1Container,
  host: string,
  exec: { cwd: string; env: Record<string, string> },
): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.httpGet) {
    const get = probe.httpGet;
    // HTTPS as the kubelet does it: the certificate is not verified.
    const https = get.scheme === "HTTPS";
    const request = https ? httpsRequest : httpRequest;
    return new Promise((resolve) => {
      const req = request(
        {
          ...(https ? { rejectUnauthorized: false } : {}),
          host: get.host ?? host,
          port: resolvePort(container, get.port as number | string),
          path: get.path ?? "/",
          timeout: timeoutMs,
          headers: Object.fromEntries((get.httpHeaders ?? []).map((h) => [h.name, h.value])),
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve(code >= 200 && code < 400);
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(false));
      req.end();
    });
  }
  if (probe.tcpSocket) {
    const port = resolvePort(container, probe.tcpSocket.port as number | string);
    return new Promise((resolve) => {
      const sock = connect({ host: probe.tcpSocket?.host ?? host, port, timeout: timeoutMs });
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("timeout", () => {
        sock.destroy();
        resolve(false);
      });
      sock.once("error", () => resolve(false));
    });
  }
  if (probe.exec?.command?.length) {
    const [cmd, ...args] = probe.exec.command;
    return new Promise((resolve) => {
      execFile(cmd ?? "false", args, { cwd: exec.cwd, env: exec.env, timeout: timeoutMs }, (err) =>
        resolve(!err),
      );
    });
  }
  return Promise.resolve(true); // grpc probes: not simulated, counted as passing
}
