import { toMs2mError } from "./errors.ts";

/**
 * Read-modify-write with optimistic concurrency: on Conflict, read again and re-apply `mutate`
 * (as client-go's RetryOnConflict). `mutate` returns undefined when nothing needs writing.
 */
export async function updateWithConflictRetry<T>(
  read: () => Promise<T>,
  mutate: (current: T) => T | undefined,
  write: (next: T) => Promise<T>,
  attempts = 5,
): Promise<T> {
  let current = await read();
  for (let attempt = 1; ; attempt++) {
    const next = mutate(current);
    if (next === undefined) return current;
    try {
      return await write(next);
    } catch (err) {
      const e = toMs2mError(err);
      if (e.reason !== "Conflict" || attempt >= attempts) throw e;
      current = await read();
    }
  }
}
