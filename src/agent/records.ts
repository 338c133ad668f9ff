// Durable per-migration records of what the agent did for a migration, so that checkpoint and
// send are idempotent per (migration, container): a repeated request returns the recorded
// result instead of checkpointing (or sending) again, even after the agent restarted.
//
// The target side records the checkpoint images it loaded into containers-storage per
// migration (records/<migration>/loaded/<container>.json), so that the release removes them.
//
// Layout: <workDir>/records/<migration>/<container>.json, mode 0600 in 0700 directories,
// written atomically (temp file, fsync, rename, fsync of the directory). Migration and
// container are validated names (DNS-1123), so they are safe path components.
import { constants } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Ms2mError } from "../common/errors.ts";
import type { CheckpointRecord } from "../transfer/types.ts";

export type { CheckpointRecord };

const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function assertName(kind: string, name: string): void {
  if (!NAME_RE.test(name) || name.includes("..")) throw new Ms2mError("BadRequest", `invalid ${kind} name`);
}

async function writeAtomic(dir: string, name: string, data: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fh = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, join(dir, name));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const d = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Target side: a checkpoint image this agent loaded into its node's containers-storage for a
 * migration (Direct: received; Registry: pulled by `/v1/pull`). Written before the load, so an
 * image is never in the store without a record, even if the agent dies mid-load.
 */
export interface LoadedImageRecord {
  migration: string;
  container: string;
  /** localhost/<repo>:<tag> in containers-storage. */
  image: string;
  via: "receive" | "pull";
  createdAt: string;
  /** UID of the workload the checkpoint is of (the image carries it as an annotation too). */
  workloadUid?: string;
}

/** Files on disk; what is in flight right now is in inflight.ts. */
export class CheckpointRecords {
  readonly dir: string;
  readonly checkpointsDir: string;

  constructor(workDir: string, checkpointsDir: string) {
    this.dir = join(workDir, "records");
    this.checkpointsDir = checkpointsDir;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private migrationDir(migration: string): string {
    assertName("migration", migration);
    return join(this.dir, migration);
  }

  async get(migration: string, container: string): Promise<CheckpointRecord | undefined> {
    assertName("container", container);
    let text: string;
    try {
      text = await readFile(join(this.migrationDir(migration), `${container}.json`), {
        encoding: "utf8",
        flag: constants.O_RDONLY | constants.O_NOFOLLOW,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as CheckpointRecord;
    } catch {
      // A torn file cannot happen (atomic rename); anything else unreadable is treated as absent.
      return undefined;
    }
  }

  async put(rec: CheckpointRecord): Promise<void> {
    assertName("container", rec.container);
    const dir = this.migrationDir(rec.migration);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(dir, `${rec.container}.json`, JSON.stringify(rec));
  }

  async remove(migration: string, container: string): Promise<void> {
    assertName("container", container);
    await rm(join(this.migrationDir(migration), `${container}.json`), { force: true });
  }

  async list(migration: string): Promise<CheckpointRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.migrationDir(migration));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: CheckpointRecord[] = [];
    for (const n of names) {
      if (!n.endsWith(".json") || n.startsWith(".")) continue;
      const rec = await this.get(migration, n.slice(0, -5)).catch(() => undefined);
      if (rec) out.push(rec);
    }
    return out;
  }

  /**
   * Records an image loaded (or about to be loaded) for a migration:
   * <workDir>/records/<migration>/loaded/<container>.json (one image per container and migration).
   */
  async putLoaded(rec: LoadedImageRecord): Promise<void> {
    assertName("container", rec.container);
    const dir = join(this.migrationDir(rec.migration), "loaded");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(dir, `${rec.container}.json`, JSON.stringify(rec));
  }

  async listLoaded(migration: string): Promise<LoadedImageRecord[]> {
    const dir = join(this.migrationDir(migration), "loaded");
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const out: LoadedImageRecord[] = [];
    for (const n of names) {
      if (!n.endsWith(".json") || n.startsWith(".")) continue;
      const text = await readFile(join(dir, n), {
        encoding: "utf8",
        flag: constants.O_RDONLY | constants.O_NOFOLLOW,
      }).catch(() => undefined);
      try {
        if (text) out.push(JSON.parse(text) as LoadedImageRecord);
      } catch {
        // unreadable: treated as absent (written atomically, so not torn)
      }
    }
    return out;
  }

  async migrations(): Promise<string[]> {
    return (await readdir(this.dir).catch(() => [] as string[])).filter((n) => NAME_RE.test(n));
  }

  /** Archive basenames claimed by any record (so a lookup never adopts another's archive). */
  async claimedArchives(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const m of await this.migrations())
      for (const r of await this.list(m)) if (r.archive) out.add(r.archive);
    return out;
  }

  /**
   * Deletes the records of a migration (loaded-image records included: the caller removes or
   * keeps those images first) and the archives they name. Idempotent.
   */
  async release(migration: string): Promise<{ records: CheckpointRecord[]; archives: number }> {
    const records = await this.list(migration);
    let archives = 0;
    for (const r of records) if (r.archive && (await this.removeArchive(r.archive))) archives++;
    await rm(this.migrationDir(migration), { recursive: true, force: true });
    return { records, archives };
  }

  /** Only a plain basename inside the checkpoints folder is ever removed. */
  private async removeArchive(archive: string): Promise<boolean> {
    if (archive.includes("/") || archive.startsWith(".")) return false;
    const path = join(this.checkpointsDir, archive);
    try {
      await stat(path);
    } catch {
      return false;
    }
    await rm(path, { force: true });
    return true;
  }

  /**
   * When anything of the migration was last written (ms since the epoch): its newest record, or
   * for an empty or unreadable folder the folder's own time.
   */
  async newest(
    migration: string,
    records?: CheckpointRecord[],
    loaded?: LoadedImageRecord[],
  ): Promise<number> {
    const recs = records ?? (await this.list(migration));
    const imgs = loaded ?? (await this.listLoaded(migration).catch(() => []));
    if (recs.length === 0 && imgs.length === 0)
      return (await stat(this.migrationDir(migration)).catch(() => undefined))?.mtimeMs ?? 0;
    return Math.max(
      0,
      ...recs.map((r) => Date.parse(r.updatedAt ?? r.createdAt) || 0),
      ...imgs.map((r) => Date.parse(r.createdAt) || 0),
    );
  }

  /** Migrations whose newest record is older than `ttlMs`. */
  async expired(ttlMs: number, now: number): Promise<string[]> {
    const out: string[] = [];
    for (const m of await this.migrations()) if (now - (await this.newest(m)) >= ttlMs) out.push(m);
    return out;
  }
}
