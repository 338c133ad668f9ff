// /healthz, /readyz and /metrics (one or two ports).
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthChecks {
  healthy: () => boolean;
  ready: () => boolean;
}

export function startHttp(
  port: number,
  routes: { checks?: HealthChecks; registry?: Registry },
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (routes.checks && (path === "/healthz" || path === "/readyz")) {
      const ok = path === "/healthz" ? routes.checks.healthy() : routes.checks.ready();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok" : "not ready");
      return;
    }
    if (routes.registry && path === "/metrics") {
      routes.registry
        .metrics()
        .then((body) => res.writeHead(200, { "content-type": routes.registry!.contentType }).end(body))
        .catch(() => res.writeHead(500).end());
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve(server));
  });
}
