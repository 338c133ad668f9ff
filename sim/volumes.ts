// Pod volumes as folders of the node: hostPath maps into the node's fake root; emptyDir,
// downwardAPI, configMap, secret and projected volumes are materialized per pod. A container
// sees its mounts as symlinks in its root folder (MS2M_CONTAINER_ROOT), and the env MS2M_MOUNTS
// maps each mountPath to its folder, since processes here share the host's mount namespace.
import { mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { V1DownwardAPIVolumeFile, V1KeyToPath, V1Pod, V1Volume } from "@kubernetes/client-node";
import type { ApiClient } from "./api-client.ts";
import type { NodePaths } from "./paths.ts";

export class VolumeError extends Error {}

export interface PodContext {
  pod: V1Pod;
  nodeIp: string;
}

/** Resolves a Downward API field path (metadata.name, metadata.labels['x'], ...). */
export function fieldValue(ctx: PodContext, fieldPath: string): string {
  const { pod } = ctx;
  const md = pod.metadata ?? {};
  const map = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (map) return (map[1] === "labels" ? md.labels : md.annotations)?.[map[2] ?? ""] ?? "";
  const formatMap = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n");
  switch (fieldPath) {
    case "metadata.name":
      return md.name ?? "";
    case "metadata.namespace":
      return md.namespace ?? "";
    case "metadata.uid":
      return md.uid ?? "";
    case "metadata.labels":
      return formatMap(md.labels);
    case "metadata.annotations":
      return formatMap(md.annotations);
    case "spec.nodeName":
      return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.hostIP":
    case "status.podIP":
      return ctx.nodeIp;
    default:
      throw new VolumeError(`unsupported fieldRef ${fieldPath}`);
  }
}

async function writeItem(dir: string, path: string, content: string | Buffer, mode?: number): Promise<void> {
  const target = resolve(dir, path);
  if (!target.startsWith(dir + "/")) throw new VolumeError(`volume item path ${path} escapes the volume`);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, content, { mode: mode ?? 0o644 });
}

async function writeDownward(dir: string, ctx: PodContext, items: V1DownwardAPIVolumeFile[]): Promise<void> {
  for (const item of items) {
    if (!item.fieldRef) continue; // resourceFieldRef: not simulated
    await writeItem(dir, item.path, fieldValue(ctx, item.fieldRef.fieldPath), item.mode);
  }
}

async function writeKeys(
  dir: string,
  data: Record<string, string | Buffer>,
  items: V1KeyToPath[] | undefined,
): Promise<void> {
  const selected: V1KeyToPath[] = items ?? Object.keys(data).map((key) => ({ key, path: key }));
  for (const item of selected) {
    const value = data[item.key];
    if (value === undefined) throw new VolumeError(`key ${item.key} not found`);
    await writeItem(dir, item.path, value, item.mode);
  }
}

export class VolumeManager {
  private readonly api: ApiClient;
  private readonly paths: NodePaths;

  constructor(api: ApiClient, paths: NodePaths) {
    this.api = api;
    this.paths = paths;
  }

  /** Materializes every volume of the pod; returns volume name -> host folder. */
  async setUp(ctx: PodContext): Promise<Map<string, string>> {
    const uid = ctx.pod.metadata?.uid ?? "";
    const result = new Map<string, string>();
    for (const volume of ctx.pod.spec?.volumes ?? []) {
      result.set(volume.name, await this.setUpOne(ctx, uid, volume));
    }
    return result;
  }

  private async setUpOne(ctx: PodContext, uid: string, volume: V1Volume): Promise<string> {
    const ns = ctx.pod.metadata?.namespace ?? "default";
    if (volume.hostPath) {
      const dir = this.paths.host(volume.hostPath.path);
      const type = volume.hostPath.type ?? "";
      if (type === "File" || type === "FileOrCreate") {
        await mkdir(dirname(dir), { recursive: true });
        if (type === "FileOrCreate") await writeFile(dir, "", { flag: "a" });
      } else if (type === "Directory") {
        // As the kubelet's type check: the pod does not start (FailedMount, retried) until it exists.
        const st = await stat(dir).catch(() => undefined);
        if (!st?.isDirectory()) {
          throw new Error(`hostPath type check failed: ${volume.hostPath.path} is not a directory`);
        }
      } else {
        // DirectoryOrCreate: the kubelet creates it; unset: the runtime creates a missing bind
        // mount source (CRI-O: server/container_create_linux.go). Either way a folder appears.
        await mkdir(dir, { recursive: true });
      }
      return dir;
    }
    const dir = this.paths.volumeDir(uid, volume.name);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    if (volume.emptyDir) return dir;
    if (volume.downwardAPI) {
      await writeDownward(dir, ctx, volume.downwardAPI.items ?? []);
      return dir;
    }
    if (volume.configMap) {
      await writeKeys(dir, await this.configMap(ns, volume.configMap.name ?? ""), volume.configMap.items);
      return dir;
    }
    if (volume.secret) {
      await writeKeys(dir, await this.secret(ns, volume.secret.secretName ?? ""), volume.secret.items);
      return dir;
    }
    if (volume.projected) {
      for (const source of volume.projected.sources ?? []) {
        if (source.serviceAccountToken) {
          const token = await this.token(
            ctx,
            source.serviceAccountToken.audience,
            source.serviceAccountToken.expirationSeconds,
          );
          await writeItem(dir, source.serviceAccountToken.path, token, 0o600);
        } else if (source.configMap) {
          await writeKeys(dir, await this.configMap(ns, source.configMap.name ?? ""), source.configMap.items);
        } else if (source.secret) {
          await writeKeys(dir, await this.secret(ns, source.secret.name ?? ""), source.secret.items);
        } else if (source.downwardAPI) {
          await writeDownward(dir, ctx, source.downwardAPI.items ?? []);
        }
      }
      return dir;
    }
    throw new VolumeError(`volume ${volume.name}: type not supported by the simulator`);
  }

  async configMap(ns: string, name: string): Promise<Record<string, string>> {
    const cm = await this.api.call<{ data?: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${ns}/configmaps/${name}`,
    );
    return cm.data ?? {};
  }

  async secret(ns: string, name: string): Promise<Record<string, Buffer>> {
    const s = await this.api.call<{ data?: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${ns}/secrets/${name}`,
    );
    return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));
  }

  /** A bound ServiceAccount token, requested as the kubelet does (TokenRequest bound to the pod). */
  private async token(ctx: PodContext, audience?: string, expirationSeconds?: number): Promise<string> {
    const md = ctx.pod.metadata ?? {};
    const sa = ctx.pod.spec?.serviceAccountName ?? "default";
    const res = await this.api.call<{ status?: { token?: string } }>(
      "POST",
      `/api/v1/namespaces/${md.namespace}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          ...(audience ? { audiences: [audience] } : {}),
          expirationSeconds: expirationSeconds ?? 3607,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: md.name, uid: md.uid },
        },
      },
    );
    if (!res.status?.token) throw new VolumeError("TokenRequest returned no token");
    return res.status.token;
  }

  /** Builds a container's root folder: one symlink per mount, at its mountPath. */
  async containerRoot(root: string, mounts: { destination: string; source: string }[]): Promise<void> {
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    for (const m of mounts) {
      const link = join(root, resolve("/", m.destination));
      await mkdir(dirname(link), { recursive: true });
      await symlink(m.source, link);
    }
  }
}
