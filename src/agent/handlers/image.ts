// `POST /v1/images` (target side): the checkpointed container's base image, made present in this
// node's containers-storage before the restore (../base-image.ts).
import type { Logger } from "../../common/logger.ts";
import type { BaseImageRequest, BaseImageResponse } from "../../transfer/types.ts";
import { ensureBaseImage } from "../base-image.ts";
import type { AgentContext } from "../context.ts";
import { registryOptions } from "../send.ts";

export async function ensureImage(
  ctx: AgentContext,
  body: BaseImageRequest,
  log: Logger,
): Promise<BaseImageResponse> {
  const got = await ensureBaseImage(body, {
    store: ctx.store,
    registry: await registryOptions(ctx.config),
    signal: ctx.signal,
  });
  if (!got.present) log.info({ image: got.image, pullSeconds: got.pullSeconds }, "base image pulled");
  return got;
}
