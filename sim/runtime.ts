// The container runtime: a container is a local process in its own process group, inside the
// node's network namespace (inherited from the simulator). Checkpoint asks the process for its
// state over a unix socket (MS2M_CHECKPOINT_SOCKET, the simulated CRIU dump); the process keeps
// running, as after a CRIU dump with --leave-running.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, open, rm } from "node:fs/promises";
import { request } from "node:http";
import { dirname } from "node:path";

export interface ContainerSpec {
  podUid: string;
  namespace: string;
  podName: string;
  name: string;
  image: string;
  imageId: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  hostname: string;
  /** mountPath -> host folder (bind mounts in the OCI spec). */
  mounts: { destination: string; source: string; readOnly: boolean }[];
}

export interface ExitStatus {
  exitCode: number;
  signal: string | null;
  finishedAt: Date;
}

export class Container {
  readonly id: string;
  readonly spec: ContainerSpec;
  readonly socket: string;
  readonly startedAt: Date;
  readonly restoredFrom: string | undefined;
  private readonly child: ChildProcess;
  readonly exited: Promise<ExitStatus>;
  exit: ExitStatus | undefined;

  constructor(id: string, spec: ContainerSpec, socket: string, child: ChildProcess, restoredFrom?: string) {
    this.id = id;
    this.spec = spec;
    this.socket = socket;
    this.child = child;
    this.startedAt = new Date();
    this.restoredFrom = restoredFrom;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        // As a shell reports it: 128 + signal number for a killed process.
        const exitCode = code ?? 128 + signalNumber(signal);
        this.exit = { exitCode, signal, finishedAt: new Date() };
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (!pid || !this.running) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM, then SIGKILL once `graceMs` has passed. */
  async stop(graceMs: number): Promise<ExitStatus> {
    if (this.exit) return this.exit;
    this.signal("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signal("SIGKILL");
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGSEGV: 11 };
  return signal ? (numbers[signal] ?? 1) : 0;
}

export class ProcessRuntime {
  private readonly pidFile: string;
  private readonly socketFor: (id: string) => string;

  constructor(pidFile: string, socketFor: (id: string) => string) {
    this.pidFile = pidFile;
    this.socketFor = socketFor;
  }

  async start(spec: ContainerSpec, restoreFrom?: string): Promise<Container> {
    const id = randomBytes(32).toString("hex");
    const socket = this.socketFor(id);
    await mkdir(dirname(socket), { recursive: true, mode: 0o700 });
    await rm(socket, { force: true });
    await mkdir(dirname(spec.logFile), { recursive: true });
    await mkdir(spec.cwd, { recursive: true });
    const env: Record<string, string> = { ...spec.env, MS2M_CHECKPOINT_SOCKET: socket };
    if (restoreFrom) env.MS2M_RESTORE_FROM = restoreFrom;
    const [cmd, ...args] = spec.argv;
    if (!cmd) throw new Error("empty command");
    const log = await open(spec.logFile, "a", 0o640);
    let spawned: Promise<void>;
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd: spec.cwd, env, detached: true, stdio: ["ignore", log.fd, log.fd] });
      // Listen before any await: "spawn" fires on the next tick.
      spawned = new Promise<void>((resolve, reject) => {
        child.once("spawn", () => resolve());
        child.once("error", reject);
      });
    } finally {
      await log.close();
    }
    await spawned;
    if (child.pid) await appendFile(this.pidFile, `${child.pid}\n`);
    return new Container(id, spec, socket, child, restoreFrom);
  }

  /** The simulated CRIU dump: the process's state bytes, obtained over its checkpoint socket. */
  checkpoint(container: Container, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = request(
        { socketPath: container.socket, path: "/checkpoint", method: "POST", timeout: timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode === 200) resolve(body);
            else
              reject(
                new Error(`process refused the dump: ${res.statusCode} ${body.toString().slice(0, 200)}`),
              );
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`checkpoint timed out after ${timeoutMs} ms`)));
      req.on("error", (err) => reject(new Error(`cannot dump the process: ${err.message}`)));
      req.end();
    });
  }

  async cleanup(container: Container): Promise<void> {
    await rm(container.socket, { force: true });
  }
}
