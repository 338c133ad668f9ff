// A container's environment as the kubelet builds it: the image's env, then envFrom, then env
// (with $(VAR) expansion and fieldRef/configMapKeyRef/secretKeyRef), plus the service variables
// of the API server. Simulator-only variables (MS2M_*) describe where mounts are on the host.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import type { VolumeManager } from "./volumes.ts";
import { fieldValue, VolumeError } from "./volumes.ts";

export interface EnvContext {
  pod: V1Pod;
  container: V1Container;
  nodeIp: string;
  imageEnv: Record<string, string>;
  apiServerHost: string;
  apiServerPort: number;
  extra: Record<string, string>;
  volumes: VolumeManager;
}

/** Expands $(VAR) references against what is defined so far; $$ escapes, as in Kubernetes. */
export function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === "$$") return "$";
    return name !== undefined && name in env ? (env[name] ?? "") : m;
  });
}

export async function buildEnv(ctx: EnvContext): Promise<Record<string, string>> {
  const ns = ctx.pod.metadata?.namespace ?? "default";
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: "/root",
    ...ctx.imageEnv,
    HOSTNAME: ctx.pod.spec?.hostname ?? ctx.pod.metadata?.name ?? "",
    KUBERNETES_SERVICE_HOST: ctx.apiServerHost,
    KUBERNETES_SERVICE_PORT: String(ctx.apiServerPort),
    KUBERNETES_SERVICE_PORT_HTTPS: String(ctx.apiServerPort),
    KUBERNETES_PORT: `tcp://${ctx.apiServerHost}:${ctx.apiServerPort}`,
    ...ctx.extra,
  };
  for (const from of ctx.container.envFrom ?? []) {
    const prefix = from.prefix ?? "";
    try {
      const data = from.configMapRef
        ? await ctx.volumes.configMap(ns, from.configMapRef.name ?? "")
        : from.secretRef
          ? Object.fromEntries(
              Object.entries(await ctx.volumes.secret(ns, from.secretRef.name ?? "")).map(([k, v]) => [
                k,
                v.toString(),
              ]),
            )
          : {};
      for (const [k, v] of Object.entries(data)) env[prefix + k] = v;
    } catch (err) {
      if (!(from.configMapRef?.optional || from.secretRef?.optional)) throw err;
    }
  }
  for (const e of ctx.container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = expand(e.value, env);
      continue;
    }
    const src = e.valueFrom;
    if (!src) {
      env[e.name] = "";
    } else if (src.fieldRef) {
      env[e.name] = fieldValue({ pod: ctx.pod, nodeIp: ctx.nodeIp }, src.fieldRef.fieldPath);
    } else if (src.configMapKeyRef) {
      const data = await ctx.volumes.configMap(ns, src.configMapKeyRef.name ?? "").catch((err: unknown) => {
        if (src.configMapKeyRef?.optional) return {} as Record<string, string>;
        throw err;
      });
      const v = data[src.configMapKeyRef.key];
      if (v !== undefined) env[e.name] = v;
      else if (!src.configMapKeyRef.optional)
        throw new VolumeError(`configmap key ${src.configMapKeyRef.key} not found`);
    } else if (src.secretKeyRef) {
      const data = await ctx.volumes.secret(ns, src.secretKeyRef.name ?? "").catch((err: unknown) => {
        if (src.secretKeyRef?.optional) return {} as Record<string, Buffer>;
        throw err;
      });
      const v = data[src.secretKeyRef.key];
      if (v !== undefined) env[e.name] = v.toString();
      else if (!src.secretKeyRef.optional)
        throw new VolumeError(`secret key ${src.secretKeyRef.key} not found`);
    } else if (src.resourceFieldRef) {
      env[e.name] = "0"; // resource limits are not simulated
    }
  }
  return env;
}
