// A MigrationFailure ends the migration (with a rollback); any other error is retried by the
// work queue with backoff until the phase deadline passes.
export class MigrationFailure extends Error {
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MigrationFailure";
    this.reason = reason;
  }
}

export const fail = (reason: string, message: string, cause?: unknown): never => {
  throw new MigrationFailure(reason, message, { cause });
};
