// Prints what a container sees, as one JSON line, then idles: its environment, its mounts, and
// who the API server says it is with the ServiceAccount token of its kube-api-access volume
// (read through MS2M_CONTAINER_ROOT, as client-node's loadFromCluster(prefix) would).
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";

const root = process.env.MS2M_CONTAINER_ROOT ?? "/";
const sa = join(root, "/var/run/secrets/kubernetes.io/serviceaccount");
const read = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
};

function whoami(): Promise<string> {
  const token = read(join(sa, "token"));
  if (!token) return Promise.resolve("no token");
  const body = JSON.stringify({ apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" });
  return new Promise((resolve) => {
    const req = request(
      {
        host: process.env.KUBERNETES_SERVICE_HOST,
        port: Number(process.env.KUBERNETES_SERVICE_PORT),
        path: "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        method: "POST",
        ca: read(join(sa, "ca.crt")),
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          try {
            resolve(
              (JSON.parse(text) as { status: { userInfo: { username: string } } }).status.userInfo.username,
            );
          } catch {
            resolve(`HTTP ${res.statusCode}`);
          }
        });
      },
    );
    req.on("error", (err) => resolve(`error ${err.message}`));
    req.end(body);
  });
}

const mounts = JSON.parse(process.env.MS2M_MOUNTS ?? "{}") as Record<string, string>;
const report = {
  env: Object.fromEntries(
    Object.entries(process.env).filter(([k]) => /^(POD_|NODE_|APP_|MY_|HOSTNAME$)/.test(k)),
  ),
  namespaceFile: read(join(sa, "namespace")),
  config: read(join(root, "/etc/config/greeting")),
  data: read(join(mounts["/data"] ?? "/nonexistent", "seed.txt")),
  user: await whoami(),
};
process.stdout.write(`report ${JSON.stringify(report)}\n`);
setInterval(() => undefined, 1 << 30);
process.on("SIGTERM", () => process.exit(0));
