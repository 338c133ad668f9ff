// The agent's API (docs/agent.md, "HTTP API"): method and path → the operation its caller must
// be allowed, and the handler. Handlers get what they need from the request, nothing of HTTP
// but for `receive`, whose body is the archive itself.
import { Ms2mError } from "../common/errors.ts";
import { RECEIVE_PATH } from "../checkpoint/direct.ts";
import {
  agentCheckpointRequestSchema,
  baseImageRequestSchema,
  pullRequestSchema,
  sendRequestSchema,
} from "../transfer/types.ts";
import type { AgentContext } from "./context.ts";
import { checkpoint } from "./handlers/checkpoint.ts";
import { inventory, lookupCheckpoint, releaseMigration } from "./handlers/checkpoints.ts";
import { ensureImage } from "./handlers/image.ts";
import { pull } from "./handlers/pull.ts";
import { receive } from "./handlers/receive.ts";
import { runtimeReport } from "./handlers/runtime.ts";
import { send } from "./handlers/send.ts";
import { defineRoute, type Call, type Route } from "./http.ts";
import { CONTAINER_NAME, MIGRATION_NAME } from "./names.ts";

/** `/v1/checkpoints/{migration}[/{container}]`: valid names need no percent-encoding, so anything encoded is refused. */
function checkRecordNames({ migration, container }: Call["params"]): void {
  if (!migration || !MIGRATION_NAME.test(migration))
    throw new Ms2mError("BadRequest", "invalid migration name");
  if (container !== undefined && !CONTAINER_NAME.test(container))
    throw new Ms2mError("BadRequest", "invalid container name");
}

/** A path parameter the route's pattern always captures. */
function param(params: Call["params"], name: "migration" | "container"): string {
  const value = params[name];
  if (value === undefined) throw new Ms2mError("InternalError", `route without ${name}`);
  return value;
}

export function agentRoutes(ctx: AgentContext): Route[] {
  return [
    defineRoute({
      name: "receive",
      method: "POST",
      path: RECEIVE_PATH,
      operation: "receive",
      transfer: true,
      status: 201,
      handle: ({ req, url, log }) => receive(ctx, req, url.searchParams, log),
    }),
    defineRoute({
      name: "send",
      method: "POST",
      path: "/v1/send",
      operation: "send",
      transfer: true,
      body: sendRequestSchema,
      handle: ({ body, log }) => send(ctx, body, log),
    }),
    defineRoute({
      name: "pull",
      method: "POST",
      path: "/v1/pull",
      operation: "pull",
      transfer: true,
      body: pullRequestSchema,
      handle: ({ body, log }) => pull(ctx, body, log),
    }),
    defineRoute({
      name: "checkpoint",
      method: "POST",
      path: "/v1/checkpoint",
      operation: "checkpoint",
      transfer: true,
      body: agentCheckpointRequestSchema,
      handle: ({ body, log }) => checkpoint(ctx, body, log),
    }),
    defineRoute({
      name: "image",
      method: "POST",
      path: "/v1/images",
      // A base image pull is a pull into this node's store: the same permission.
      operation: "pull",
      transfer: true,
      body: baseImageRequestSchema,
      handle: ({ body, log }) => ensureImage(ctx, body, log),
    }),
    defineRoute({
      // What the agent holds, per migration: the controller's lifecycle sweep reads it.
      name: "checkpoints",
      method: "GET",
      path: "/v1/checkpoints",
      operation: "checkpoint",
      handle: () => inventory(ctx),
    }),
    defineRoute({
      name: "checkpoints",
      method: "GET",
      path: /^\/v1\/checkpoints\/(?<migration>[^/]{1,253})\/(?<container>[^/]{1,63})$/,
      checkParams: checkRecordNames,
      operation: "checkpoint",
      handle: ({ params, log }) =>
        lookupCheckpoint(ctx, param(params, "migration"), param(params, "container"), log),
    }),
    defineRoute({
      name: "checkpoints",
      method: "DELETE",
      path: /^\/v1\/checkpoints\/(?<migration>[^/]{1,253})$/,
      checkParams: checkRecordNames,
      operation: "checkpoint",
      handle: ({ params, url, log }) =>
        releaseMigration(ctx, param(params, "migration"), log, {
          keepLoadedImages: url.searchParams.get("keepLoadedImages") === "true",
        }),
    }),
    defineRoute({
      name: "runtime",
      method: "GET",
      path: "/v1/runtime",
      operation: "runtime",
      handle: ({ url }) => runtimeReport(ctx, url.searchParams.get("runtime")),
    }),
  ];
}
