import { spawn, type ChildProcess } from "node:child_process";
import { appendFile, open, readFile } from "node:fs/promises";
import { sleep } from "./exec.ts";

/**
 * A long-running child in its own process group, logging to a file. Its pid is recorded in
 * `pidFile` so a later run can sweep it if this one dies without cleaning up.
 */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  constructor(name: string, logFile: string) {
    this.name = name;
    this.logFile = logFile;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(
    cmd: string,
    args: string[],
    pidFile: string,
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<void> {
    const log = await open(this.logFile, "a", 0o600);
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", log.fd, log.fd], env });
    await log.close();
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.once("error", () => undefined);
    if (child.pid === undefined) throw new Error(`${this.name}: could not start ${cmd}`);
    await appendFile(pidFile, `${child.pid}\n`);
    child.unref();
  }

  /** SIGTERM to the whole group, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    killGroup(child.pid, "SIGTERM");
    const done = await Promise.race([this.exited, sleep(graceMs).then(() => "timeout" as const)]);
    if (done === "timeout") {
      killGroup(child.pid, "SIGKILL");
      await this.exited;
    }
  }

  /** Immediate SIGKILL of the group, as a crash would. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    killGroup(child.pid, "SIGKILL");
    await this.exited;
  }

  async tail(lines = 40): Promise<string> {
    const text = await readFile(this.logFile, "utf8").catch(() => "");
    return text.split("\n").slice(-lines).join("\n");
  }
}

/** Whether a process with this pid exists (one of another user's counts: EPERM). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Kills every process group recorded in a pid file (used when sweeping a dead run). */
export async function killRecorded(pidFile: string): Promise<void> {
  const text = await readFile(pidFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const pid = Number(line.trim());
    if (pid > 0) killGroup(pid, "SIGKILL");
  }
}
