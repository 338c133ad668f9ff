export { AGENT_SERVER_NAME, AgentClient, type AgentClientOptions } from "./client.ts";
export * from "./types.ts";
