export * from "./config.ts";
export * from "./errors.ts";
export * from "./patch.ts";
export * from "./owners.ts";
export * from "./finalizers.ts";
export * from "./selectors.ts";
export * from "./retry.ts";
