import { z } from "zod";

/** Exit code for invalid configuration, as for a command-line usage error. */
export const CONFIG_EXIT_CODE = 2;

export class ConfigError extends Error {
  readonly binary: string;
  readonly issues: string[];

  constructor(binary: string, issues: string[]) {
    super(`${binary}: invalid configuration:\n${issues.map((i) => `  - ${i}`).join("\n")}`);
    this.name = "ConfigError";
    this.binary = binary;
    this.issues = issues;
  }
}

/**
 * Parses environment variables against a zod object schema whose keys are the variable
 * names. Each problem is reported with the variable it concerns.
 */
export function parseEnv<S extends z.ZodObject>(
  binary: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const key = issue.path.join(".") || "(environment)";
    const message = issue.code === "invalid_type" && input[key] === undefined ? "is required" : issue.message;
    return `${key}: ${message}`;
  });
  throw new ConfigError(binary, issues);
}

/** Loads configuration or exits the process with a clear message and exit code 2. */
export function loadConfigOrExit<S extends z.ZodObject>(binary: string, schema: S): z.infer<S> {
  try {
    return parseEnv(binary, schema);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(CONFIG_EXIT_CODE);
    }
    throw err;
  }
}

// Reusable field types for environment variables.
export const env = {
  port: () => z.coerce.number().int().min(0).max(65535),
  positiveInt: () => z.coerce.number().int().positive(),
  seconds: () => z.coerce.number().positive(),
  bool: () =>
    z
      .enum(["true", "false", "1", "0", "yes", "no"], { message: "must be true or false" })
      .transform((v) => v === "true" || v === "1" || v === "yes"),
  path: () => z.string().startsWith("/", { message: "must be an absolute path" }),
  logLevel: () => z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]),
};
