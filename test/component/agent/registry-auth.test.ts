// Registry authentication against Debian's docker-registry (distribution 2.8): Bearer tokens
// from a token server written here (distribution token spec: JWT signed ES256 with the x5c
// chain the registry checks against its rootcertbundle), and Basic with htpasswd.
import { execFileSync } from "node:child_process";
import { randomUUID, sign } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import {
  clearRegistryAuthCache,
  deleteCheckpointImage,
  parseChallenge,
  parseRegistryCredentials,
  pullCheckpointImage,
  pushCheckpointImage,
  type RegistryOptions,
} from "../../../src/checkpoint/registry.ts";
import { listStoredImages, runSkopeo, storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import { AgentClient } from "../../../src/transfer/client.ts";
import {
  TOKENS,
  makePki,
  residue,
  selfSigned,
  startAgent,
  startRegistry,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";
import { sleep } from "../../../tooling/exec.ts";

const SERVICE = "ms2m-test-registry";
const ISSUER = "ms2m-test-token-issuer";
const TS = "2025-01-02T03:04:05Z";
const MAX = 1024 ** 3;

interface User {
  password: string;
  actions: string[];
  expiresIn?: number;
}
const USERS: Record<string, User> = {
  pusher: { password: "s3cret-pusher-pw", actions: ["pull", "push", "delete"] },
  nodelete: { password: "s3cret-nodelete-pw", actions: ["pull", "push"] },
  shortlived: { password: "s3cret-short-pw", actions: ["pull", "push"], expiresIn: 1 },
};

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** A token server per the distribution token spec; counts requests and records scopes asked. */
class TokenServer {
  requests = 0;
  scopes: string[][] = [];
  server!: Server;
  url = "";
  private readonly pki: Pki;
  private readonly signKey: Buffer;
  private readonly signCertDer: Buffer;
  constructor(pki: Pki, signKey: Buffer, signCertDer: Buffer) {
    this.pki = pki;
    this.signKey = signKey;
    this.signCertDer = signCertDer;
  }
  async start(): Promise<void> {
    this.server = createServer({ cert: this.pki.cert, key: this.pki.key }, (req, res) => {
      this.requests++;
      const url = new URL(req.url ?? "/", "https://x");
      let user: string | undefined;
      const auth = req.headers.authorization;
      if (auth) {
        const [u, p] = Buffer.from(auth.replace(/^Basic /, ""), "base64")
          .toString()
          .split(/:(.*)/s);
        if (!u || USERS[u]?.password !== p) {
          res.writeHead(401, { "content-type": "application/json" });
          res.end(JSON.stringify({ details: "invalid credentials" }));
          return;
        }
        user = u;
      }
      const scopes = url.searchParams.getAll("scope");
      this.scopes.push(scopes);
      const access = scopes.flatMap((s) => {
        const [type, name, actions] = s.split(":");
        const granted = (actions ?? "").split(",").filter((a) => user && USERS[user]!.actions.includes(a));
        return type === "repository" && granted.length ? [{ type, name, actions: granted }] : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const expiresIn = user ? (USERS[user]!.expiresIn ?? 300) : 300;
      const header = { typ: "JWT", alg: "ES256", x5c: [this.signCertDer.toString("base64")] };
      const claims = {
        iss: ISSUER,
        sub: user ?? "",
        aud: url.searchParams.get("service"),
        exp: now + expiresIn,
        nbf: now - 5,
        iat: now,
        jti: randomUUID(),
        access,
      };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const sig = sign("sha256", Buffer.from(input), { key: this.signKey, dsaEncoding: "ieee-p1363" });
      res.writeHead(200, { "content-type": "application/json" });
      // access_token for one user: clients must accept either field.
      const field = user === "nodelete" ? "access_token" : "token";
      res.end(JSON.stringify({ [field]: `${input}.${b64url(sig)}`, expires_in: expiresIn }));
    });
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }
}

let pki: Pki;
let work: string;
let tokenServer: TokenServer;
let registry: TestRegistry;
let basicRegistry: TestRegistry;
let source: TestAgent;
let target: TestAgent;
let wrongSource: TestAgent;
let controller: AgentClient;

function credsFile(name: string, text: string): string {
  const p = join(work, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

function opts(registryHost: string, user?: string, password?: string): RegistryOptions {
  return {
    insecureHosts: [registryHost],
    ca: pki.ca,
    ...(user ? { auth: { username: user, password: password ?? USERS[user]!.password } } : {}),
  };
}

async function archive(name: string, size = 512 * 1024) {
  const path = join(work, name);
  await writeFakeCheckpointArchive(path, { size, containerName: "app" });
  return { path, ...(await digestFile(path)) };
}

function repoExists(reg: TestRegistry, repo: string): boolean {
  return existsSync(join(reg.dir, "data/docker/registry/v2/repositories", repo));
}

beforeAll(async () => {
  pki = makePki();
  work = mkdtempSync(join(tmpdir(), "ms2m-regauth-"));
  // the token signing key and its self-signed certificate: the registry's rootcertbundle
  selfSigned(work, "sign", "/CN=ms2m-test-token-signer");
  const der = execFileSync("openssl", ["x509", "-in", "sign.crt", "-outform", "DER"], { cwd: work });
  tokenServer = new TokenServer(pki, readFileSync(join(work, "sign.key")), der);
  await tokenServer.start();
  // htpasswd (bcrypt, cost 4) for the Basic registry
  const hash = execFileSync("python3", [
    "-W",
    "ignore::DeprecationWarning",
    "-c",
    "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
    USERS.pusher!.password,
  ])
    .toString()
    .trim();
  writeFileSync(join(work, "htpasswd"), `pusher:${hash}\n`, { mode: 0o600 });
  [registry, basicRegistry] = await Promise.all([
    startRegistry({
      auth: `{ token: { realm: "${tokenServer.url}", service: ${SERVICE}, issuer: ${ISSUER}, rootcertbundle: ${join(work, "sign.crt")} } }`,
    }),
    startRegistry({ auth: `{ htpasswd: { realm: ms2m-test, path: ${join(work, "htpasswd")} } }` }),
  ]);
  const env = (creds: string) => ({
    AGENT_INSECURE_REGISTRIES: `${registry.host},${basicRegistry.host}`,
    AGENT_REGISTRY_CA_FILE: pki.caFile,
    AGENT_REGISTRY_CREDENTIALS_FILE: creds,
  });
  [source, target, wrongSource] = await Promise.all([
    startAgent(pki, {
      host: "127.0.0.1",
      env: env(credsFile("pusher", `pusher:${USERS.pusher!.password}\n`)),
    }),
    // the target reads a docker config JSON (a kubernetes.io/dockerconfigjson Secret)
    startAgent(pki, {
      host: "127.0.0.2",
      env: env(
        credsFile(
          "dockerconfig.json",
          JSON.stringify({
            auths: {
              [registry.host]: { auth: Buffer.from(`pusher:${USERS.pusher!.password}`).toString("base64") },
            },
          }),
        ),
      ),
    }),
    startAgent(pki, { host: "127.0.0.1", env: env(credsFile("wrong", "pusher:not-the-password")) }),
  ]);
  controller = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
});

afterAll(async () => {
  await controller?.close();
  tokenServer?.server.close();
  await Promise.all([
    source?.stop(),
    target?.stop(),
    wrongSource?.stop(),
    registry?.stop(),
    basicRegistry?.stop(),
  ]);
  execFileSync("rm", ["-rf", work, pki.dir]);
});

const secrets = Object.values(USERS).map((u) => u.password);
function expectNoSecret(err: unknown) {
  const text = `${String(err)} ${JSON.stringify(err)} ${(err as Error).stack ?? ""}`;
  for (const s of [...secrets, "not-the-password"]) expect(text).not.toContain(s);
  expect(text).not.toMatch(/eyJ[\w-]{10,}\./); // no JWT either
}

describe("registry with token (Bearer) auth", () => {
  it("parses challenges and credential files", () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope"',
      ),
    ).toEqual({
      scheme: "bearer",
      realm: "https://auth.example/token",
      service: "reg",
      scope: "repository:a/b:pull,push",
      error: "insufficient_scope",
    });
    expect(parseChallenge('Basic realm="x"')).toEqual({ scheme: "basic", realm: "x" });
    expect(parseChallenge(undefined)).toBeUndefined();
    expect(parseRegistryCredentials("u:p:with:colons\n")).toEqual({
      username: "u",
      password: "p:with:colons",
    });
    const byHost = parseRegistryCredentials(
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw").toString("base64") },
          "ghcr.io": { username: "g", password: "h" },
        },
      }),
    ) as (h: string) => unknown;
    expect(byHost("ghcr.io")).toEqual({ username: "g", password: "h" });
    expect(byHost("registry-1.docker.io")).toEqual({ username: "hub", password: "pw" });
    expect(byHost("other.example")).toBeUndefined();
  });

  it("agents push, pull and load through the token registry; delete needs and gets the delete scope", async () => {
    const name = `checkpoint-web-0_default-app-${TS}.tar`;
    const path = join(source.checkpointsDir, name);
    await writeFakeCheckpointArchive(path, { size: 2 * 1024 * 1024, containerName: "app" });
    const { digest } = await digestFile(path);
    const remote = `${registry.host}/ms2m/tok:m1-app`;
    const sent = await controller.send(source.url, {
      migration: "m1",
      namespace: "default",
      pod: "web-0",
      container: "app",
      archive: name,
      destination: { type: "registry", image: remote },
    });
    expect(sent.digest).toBe(digest);
    const image = "localhost/ms2m/tok:m1";
    const pulled = await controller.pull(target.url, {
      migration: "m1",
      source: remote,
      image,
      expectedDigest: digest,
    });
    expect(pulled.digest).toBe(digest);
    const stored = (await storedManifest(target.store, image)) as { layers: { digest: string }[] };
    expect(stored.layers[0]!.digest).toBe(digest);
    expect(residue(source)).toEqual([]);
    expect(residue(target)).toEqual([]);

    // a standard client (skopeo, credentials in a 0600 authfile) sees the same image
    const authFile = credsFile(
      "auth.json",
      JSON.stringify({
        auths: {
          [registry.host]: { auth: Buffer.from(`pusher:${USERS.pusher!.password}`).toString("base64") },
        },
      }),
    );
    const raw = JSON.parse(
      await runSkopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        authFile,
        `docker://${remote}`,
      ]),
    ) as { layers: { digest: string }[] };
    expect(raw.layers[0]!.digest).toBe(digest);

    const asked = tokenServer.scopes.length;
    expect(await deleteCheckpointImage(remote, opts(registry.host, "pusher"))).toBe("deleted");
    expect(tokenServer.scopes.slice(asked).flat()).toContain("repository:ms2m/tok:delete");
    expect(await deleteCheckpointImage(remote, opts(registry.host, "pusher"))).toBe("absent");
  });

  it("wrong password: Unauthorized, no secret in the error, nothing pushed, pulled or left", async () => {
    const name = `checkpoint-web-1_default-app-${TS}.tar`;
    const path = join(wrongSource.checkpointsDir, name);
    await writeFakeCheckpointArchive(path, { size: 256 * 1024, containerName: "app" });
    const err = await controller
      .send(wrongSource.url, {
        migration: "m2",
        namespace: "default",
        pod: "web-1",
        container: "app",
        archive: name,
        destination: { type: "registry", image: `${registry.host}/ms2m/wrongpw:m2` },
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: "Unauthorized" });
    expect(String((err as Error).message)).toMatch(
      /token server .* refused the credentials of "pusher" \(HTTP 401\)/,
    );
    expectNoSecret(err);
    expect(repoExists(registry, "ms2m/wrongpw")).toBe(false);
    expect(residue(wrongSource)).toEqual([]);

    // pulling with a wrong password: same reason, nothing loaded, no residue
    const dir = join(work, "layout-wrong");
    const pullErr = await pullCheckpointImage(`${registry.host}/ms2m/tok:m1-app`, dir, "t", {
      ...opts(registry.host, "pusher", "not-the-password"),
      maxBytes: MAX,
    }).catch((e: unknown) => e);
    expect(pullErr).toMatchObject({ reason: "Unauthorized" });
    expectNoSecret(pullErr);
    expect(existsSync(join(dir, "blobs"))).toBe(false);
    expect(await listStoredImages(wrongSource.store)).toEqual([]);
  });

  it("a token without the delete action: Forbidden naming the missing scope; the image stays", async () => {
    const a = await archive("nodelete.tar");
    const remote = `${registry.host}/ms2m/nodelete:t1`;
    const o = opts(registry.host, "nodelete");
    const pushed = await pushCheckpointImage(
      (await import("node:fs")).createReadStream(a.path),
      remote,
      "app",
      { ...o, maxBytes: MAX },
    );
    expect(pushed.layerDigest).toBe(a.digest);
    const err = await deleteCheckpointImage(remote, { ...o, manifestDigest: pushed.manifestDigest }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ reason: "Forbidden" });
    expect((err as Error).message).toMatch(/do not grant delete on ms2m\/nodelete/);
    expectNoSecret(err);
    // still there: the pusher (who may delete) resolves and deletes it
    expect(await deleteCheckpointImage(remote, opts(registry.host, "pusher"))).toBe("deleted");
  });

  it("tokens are cached per scope and renewed after expires_in", async () => {
    clearRegistryAuthCache();
    const a = await archive("cache.tar");
    const { createReadStream } = await import("node:fs");
    const o = opts(registry.host, "pusher");
    const before = tokenServer.requests;
    for (const tag of ["c1", "c2", "c3"]) {
      await pushCheckpointImage(createReadStream(a.path), `${registry.host}/ms2m/cache:${tag}`, "app", {
        ...o,
        maxBytes: MAX,
      });
    }
    expect(tokenServer.requests - before).toBe(1); // one push token for three pushes
    for (const tag of ["c1", "c2"]) {
      const dir = join(work, `layout-${tag}`);
      await pullCheckpointImage(`${registry.host}/ms2m/cache:${tag}`, dir, "t", { ...o, maxBytes: MAX });
      execFileSync("rm", ["-rf", dir]);
    }
    expect(tokenServer.requests - before).toBe(2); // plus one pull token

    // expires_in: 1 → renewed on the next call after a second
    const s = opts(registry.host, "shortlived");
    const mid = tokenServer.requests;
    await pushCheckpointImage(createReadStream(a.path), `${registry.host}/ms2m/short:s1`, "app", {
      ...s,
      maxBytes: MAX,
    });
    await sleep(1100);
    await pushCheckpointImage(createReadStream(a.path), `${registry.host}/ms2m/short:s2`, "app", {
      ...s,
      maxBytes: MAX,
    });
    expect(tokenServer.requests - mid).toBe(2);
  });

  it("anonymous (no credentials): an anonymous token without rights gives Forbidden, not a hang", async () => {
    const a = await archive("anon.tar");
    const err = await pushCheckpointImage(
      (await import("node:fs")).createReadStream(a.path),
      `${registry.host}/ms2m/anon:a1`,
      "app",
      { ...opts(registry.host), maxBytes: MAX },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: "Forbidden" });
    expect(repoExists(registry, "ms2m/anon")).toBe(false);
  });
});

describe("registry with htpasswd (Basic) auth", () => {
  it("push, pull and delete with the right password; Unauthorized with a wrong one", async () => {
    const a = await archive("basic.tar");
    const { createReadStream } = await import("node:fs");
    const remote = `${basicRegistry.host}/ms2m/basic:b1`;
    const pushed = await pushCheckpointImage(createReadStream(a.path), remote, "app", {
      ...opts(basicRegistry.host, "pusher"),
      maxBytes: MAX,
    });
    const dir = join(work, "layout-basic");
    const got = await pullCheckpointImage(remote, dir, "t", {
      ...opts(basicRegistry.host, "pusher"),
      maxBytes: MAX,
    });
    expect(got.layerDigest).toBe(a.digest);
    execFileSync("rm", ["-rf", dir]);
    const err = await pushCheckpointImage(
      createReadStream(a.path),
      `${basicRegistry.host}/ms2m/basic:b2`,
      "app",
      {
        ...opts(basicRegistry.host, "pusher", "not-the-password"),
        maxBytes: MAX,
      },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: "Unauthorized" });
    expectNoSecret(err);
    expect(
      await deleteCheckpointImage(remote, {
        ...opts(basicRegistry.host, "pusher"),
        manifestDigest: pushed.manifestDigest,
      }),
    ).toBe("deleted");
  });
});
