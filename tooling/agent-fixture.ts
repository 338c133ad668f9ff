// Shared fixtures for the agent tests: throwaway CA and certificates (openssl), a fake
// TokenReview/SubjectAccessReview reviewer, a loopback docker-registry, agents on per-test
// roots, and a hand-rolled tar header writer for malicious archives.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AccessAttributes, Reviewer, UserInfo } from "../src/agent/auth.ts";
import { parseAgentConfig } from "../src/agent/config.ts";
import { AgentServer } from "../src/agent/server.ts";
import { createLogger } from "../src/common/logger.ts";
import { freePort, sleep } from "./exec.ts";
import { removeTempDir, tempDir } from "./temp-dir.ts";

export interface Pki {
  dir: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** openssl req: a new unencrypted EC P-256 key. */
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/**
 * A self-signed EC P-256 certificate and its key (openssl), written to `<dir>/<name>.crt` and
 * `<dir>/<name>.key`; `san` is a subjectAltName value such as `IP:127.0.0.1`.
 */
export function selfSigned(
  dir: string,
  name: string,
  subject: string,
  opts: { days?: number; san?: string } = {},
): { certFile: string; keyFile: string } {
  const [certFile, keyFile] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      ...NEW_EC_KEY,
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      String(opts.days ?? 2),
      "-subj",
      subject,
      ...(opts.san ? ["-addext", `subjectAltName=${opts.san}`] : []),
    ],
    { stdio: "pipe" },
  );
  return { certFile, keyFile };
}

/**
 * A CA and one serving certificate valid for 127.0.0.1, 127.0.0.2 and ms2m-agent (what agents
 * verify), in a temp folder `dir` the caller removes (removeTempDir(pki.dir)).
 */
export function makePki(): Pki {
  const dir = tempDir("pki");
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  selfSigned(dir, "ca", "/CN=ms2m-test-ca");
  run("req", ...NEW_EC_KEY, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=ms2m-agent");
  writeFileSync(
    join(dir, "ext.cnf"),
    "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost,DNS:ms2m-agent\n",
  );
  run(
    "x509",
    "-req",
    "-in",
    "tls.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "tls.crt",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  return {
    dir,
    ca: readFileSync(join(dir, "ca.crt")),
    cert: readFileSync(join(dir, "tls.crt")),
    key: readFileSync(join(dir, "tls.key")),
    caFile: join(dir, "ca.crt"),
    certFile: join(dir, "tls.crt"),
    keyFile: join(dir, "tls.key"),
  };
}

export const TOKENS = {
  controller: "controller-token",
  agent: "agent-token",
  noRights: "norights-token",
  user: "human-token",
};

/** Fake reviewer: known tokens map to users; RBAC is a fixed table. Counts calls. */
export class FakeReviewer implements Reviewer {
  calls = { authenticate: 0, authorize: 0 };
  down = false;
  users: Record<string, UserInfo> = {
    [TOKENS.controller]: { username: "system:serviceaccount:ms2m-system:ms2m-controller" },
    [TOKENS.agent]: { username: "system:serviceaccount:ms2m-system:ms2m-agent" },
    [TOKENS.noRights]: { username: "system:serviceaccount:default:default" },
    [TOKENS.user]: { username: "alice" },
  };
  rbac: Record<string, string[]> = {
    "system:serviceaccount:ms2m-system:ms2m-controller": ["send", "pull", "checkpoint", "runtime"],
    "system:serviceaccount:ms2m-system:ms2m-agent": ["receive"],
    alice: ["receive", "send", "pull", "checkpoint"],
  };
  async authenticate(token: string, audience: string): Promise<UserInfo | null> {
    this.calls.authenticate++;
    if (this.down) throw new Error("connection refused");
    if (audience !== "ms2m-agent") return null;
    return this.users[token] ?? null;
  }
  async authorize(user: UserInfo, attrs: AccessAttributes): Promise<boolean> {
    this.calls.authorize++;
    if (this.down) throw new Error("connection refused");
    // As config/rbac grants them: `get` on agents/runtime (a read), `create` on the commands.
    return (
      attrs.verb === (attrs.subresource === "runtime" ? "get" : "create") &&
      attrs.resource === "agents" &&
      (this.rbac[user.username] ?? []).includes(attrs.subresource)
    );
  }
}

export interface TestAgent {
  agent: AgentServer;
  url: string;
  root: string;
  checkpointsDir: string;
  workDir: string;
  store: { driver: "overlay" | "vfs"; graphRoot: string; runRoot: string };
  reviewer: FakeReviewer;
  stop(): Promise<void>;
}

export async function startAgent(
  pki: Pki,
  opts: { host?: string; env?: Record<string, string>; reviewer?: FakeReviewer; token?: string } = {},
): Promise<TestAgent> {
  const root = tempDir("agent");
  const host = opts.host ?? "127.0.0.1";
  const reviewer = opts.reviewer ?? new FakeReviewer();
  const env = {
    NODE_NAME: `node-${host.replaceAll(".", "-")}`,
    AGENT_PORT: "0",
    AGENT_BIND_ADDRESS: host,
    AGENT_TLS_CERT_FILE: pki.certFile,
    AGENT_TLS_KEY_FILE: pki.keyFile,
    AGENT_TLS_CA_FILE: pki.caFile,
    AGENT_CHECKPOINTS_DIR: join(root, "checkpoints"),
    AGENT_WORK_DIR: join(root, "work"),
    AGENT_STORAGE_DRIVER: process.env.MS2M_TEST_STORAGE_DRIVER ?? "overlay",
    AGENT_STORAGE_GRAPHROOT: join(root, "storage"),
    AGENT_STORAGE_RUNROOT: join(root, "run"),
    AGENT_AUTH_CACHE_SECONDS: "0.001",
    LOG_LEVEL: "silent",
    ...opts.env,
  };
  execFileSync("mkdir", ["-p", "-m", "0700", env.AGENT_CHECKPOINTS_DIR]);
  const config = parseAgentConfig(env);
  const agent = new AgentServer(
    {
      config,
      reviewer,
      logger: createLogger("test-agent", { level: "silent" }),
      outboundToken: async () => opts.token ?? TOKENS.agent,
    },
    { cert: pki.cert, key: pki.key },
  );
  const port = await agent.listen().catch(async (err: unknown) => {
    await removeRoot(root);
    throw err;
  });
  return {
    agent,
    url: `https://${host}:${port}`,
    root,
    checkpointsDir: env.AGENT_CHECKPOINTS_DIR,
    workDir: env.AGENT_WORK_DIR,
    store: {
      driver: config.AGENT_STORAGE_DRIVER,
      graphRoot: env.AGENT_STORAGE_GRAPHROOT,
      runRoot: env.AGENT_STORAGE_RUNROOT,
    },
    reviewer,
    async stop() {
      await agent.shutdown(1000);
      await removeRoot(root);
    },
  };
}

/** The overlay driver bind-mounts <graphroot>/overlay onto itself: unmount before removing. */
export async function removeRoot(root: string): Promise<void> {
  try {
    execFileSync("umount", [join(root, "storage", "overlay")], { stdio: "ignore" });
  } catch {
    // not mounted (vfs, or never used)
  }
  await removeTempDir(root);
}

/** Files left in the agent's temp folder (must be none between requests). */
export function residue(a: TestAgent): string[] {
  try {
    return readdirSync(join(a.workDir, "tmp"), { recursive: true }) as string[];
  } catch {
    return [];
  }
}

export interface TestRegistry {
  host: string;
  proc: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

/**
 * Debian's docker-registry on 127.0.0.1, HTTP, temp storage. `auth` is the YAML of the
 * config's `auth:` section (htpasswd or token) when the registry should require credentials.
 */
export async function startRegistry(opts: { auth?: string } = {}): Promise<TestRegistry> {
  const dir = tempDir("registry");
  const port = await freePort();
  const cfg = join(dir, "config.yml");
  writeFileSync(
    cfg,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      ...(opts.auth ? [`auth: ${opts.auth}`] : []),
      "",
    ].join("\n"),
  );
  const proc = spawn("docker-registry", ["serve", cfg], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()).slice(-4000));
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200 || (opts.auth && res.status === 401)) break;
    } catch {
      // not yet
    }
    if (proc.exitCode !== null) {
      await removeTempDir(dir);
      throw new Error(`registry exited: ${stderr}`);
    }
    await sleep(100);
  }
  return {
    host,
    proc,
    dir,
    async stop() {
      proc.kill("SIGTERM");
      await removeTempDir(dir);
    },
  };
}

// ---- hand-made tar records for malicious archives ----

export interface RawEntry {
  name: string;
  type?: string; // typeflag char
  size?: number;
  data?: Buffer;
  linkname?: string;
  mode?: number;
  /** Corrupt the checksum. */
  badChecksum?: boolean;
}

export function tarHeader(e: RawEntry): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name.slice(0, 100), 0, "utf8");
  h.write((e.mode ?? 0o644).toString(8).padStart(7, "0") + "\0", 100, "ascii");
  h.write("0000000\0", 108, "ascii");
  h.write("0000000\0", 116, "ascii");
  const size = e.size ?? e.data?.length ?? 0;
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "ascii");
  h.write("00000000000\0", 136, "ascii");
  h.write(e.type ?? "0", 156, "ascii");
  if (e.linkname) h.write(e.linkname, 157, "utf8");
  h.write("ustar\u000000", 257, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  if (e.badChecksum) sum += 1;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

export function tarOf(entries: RawEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    const data = e.data ?? Buffer.alloc(0);
    if (data.length) {
      parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  if (opts.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export function pax(records: Record<string, string>): Buffer {
  let out = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out += `${len}${body}`;
  }
  return Buffer.from(out);
}
