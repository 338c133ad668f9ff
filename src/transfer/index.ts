export { AgentClient, type AgentClientOptions } from "./client.ts";
export * from "./types.ts";
