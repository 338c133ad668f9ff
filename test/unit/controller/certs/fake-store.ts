// An in-memory SecretStore with the API server's optimistic concurrency: create of an existing
// name → AlreadyExists, update with a stale resourceVersion → Conflict.
import { Ms2mError } from "../../../../src/common/errors.ts";
import type { SecretStore, StoredSecret } from "../../../../src/controller/certs/index.ts";

const copy = (s: StoredSecret): StoredSecret => structuredClone(s);

export class FakeSecretStore implements SecretStore {
  readonly secrets = new Map<string, StoredSecret>();
  writes = 0;
  private rv = 0;
  /** Runs before a write is applied (e.g. another replica writing in between). */
  beforeWrite?: (name: string) => void | Promise<void>;

  async get(name: string) {
    const s = this.secrets.get(name);
    return s ? copy(s) : undefined;
  }
  async create(name: string, secret: StoredSecret) {
    await this.beforeWrite?.(name);
    if (this.secrets.has(name)) throw new Ms2mError("AlreadyExists", `secrets "${name}" already exists`);
    return this.put(name, secret);
  }
  async update(name: string, secret: StoredSecret) {
    await this.beforeWrite?.(name);
    const cur = this.secrets.get(name);
    if (!cur) throw new Ms2mError("NotFound", `secrets "${name}" not found`);
    if (secret.resourceVersion !== cur.resourceVersion)
      throw new Ms2mError("Conflict", `the object has been modified`);
    return this.put(name, secret);
  }
  /** Writes directly, as another party would (kubectl edit, another replica). */
  put(name: string, secret: StoredSecret): StoredSecret {
    this.writes++;
    const s = { ...copy(secret), resourceVersion: String(++this.rv) };
    this.secrets.set(name, s);
    return copy(s);
  }
}
