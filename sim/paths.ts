// Layout of a node folder. `root/` stands for the node's filesystem: hostPath volumes, the
// kubelet's checkpoint folder and containers-storage all live under it, so a pod that mounts
// /var/lib/kubelet/checkpoints sees exactly what the simulated kubelet wrote there.
import { join, resolve } from "node:path";
import type { StorageConfig } from "../src/checkpoint/skopeo.ts";

export class NodePaths {
  readonly dir: string;
  readonly root: string;

  constructor(dir: string) {
    this.dir = dir;
    this.root = join(dir, "root");
  }

  /** Maps an absolute path of the node's filesystem into the node folder. */
  host(path: string): string {
    const inside = resolve("/", path); // normalizes away any `..`
    return join(this.root, inside);
  }

  get checkpoints(): string {
    return this.host("/var/lib/kubelet/checkpoints");
  }

  get storage(): { graphRoot: string; runRoot: string } {
    return {
      graphRoot: this.host("/var/lib/containers/storage"),
      runRoot: this.host("/run/containers/storage"),
    };
  }

  storageConfig(driver: "vfs" | "overlay"): StorageConfig {
    return { driver, ...this.storage };
  }

  podDir(uid: string): string {
    return this.host(`/var/lib/kubelet/pods/${uid}`);
  }

  volumeDir(uid: string, volume: string): string {
    return join(this.podDir(uid), "volumes", volume);
  }

  /** The stand-in for a container's root filesystem: mounts appear in it as symlinks. */
  containerRoot(uid: string, container: string): string {
    return join(this.podDir(uid), "containers", container, "rootfs");
  }

  logDir(namespace: string, pod: string, uid: string, container: string): string {
    return this.host(`/var/log/pods/${namespace}_${pod}_${uid}/${container}`);
  }

  /**
   * A container's checkpoint socket, in the node folder (removed with it). Unix socket paths are
   * limited to 107 bytes: a folder too deep falls back to /run/ms2m-sim.
   */
  checkpointSocket(containerId: string): string {
    const name = containerId.slice(0, 16) + ".sock";
    const inNode = join(this.dir, "sockets", name);
    return Buffer.byteLength(inNode) < 100 ? inNode : join("/run/ms2m-sim", name);
  }

  get controlSocket(): string {
    return join(this.dir, "control.sock");
  }

  get simulatedImages(): string {
    return join(this.dir, "simulated-images.json");
  }

  get containerPids(): string {
    return join(this.dir, "container.pids");
  }
}
