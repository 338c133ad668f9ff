// BaseImagePort over the target node's ms2m-agent (`POST /v1/images`): the agent pulls the
// image into its node's containers-storage unless it is there already.
import type { AgentClient } from "../../transfer/index.ts";
import type { BaseImagePort } from "../ports.ts";
import type { AgentLocator } from "./agent.ts";

export class AgentBaseImages implements BaseImagePort {
  private readonly client: Pick<AgentClient, "ensureImage">;
  private readonly locator: Pick<AgentLocator, "urlFor">;

  constructor(client: Pick<AgentClient, "ensureImage">, locator: Pick<AgentLocator, "urlFor">) {
    this.client = client;
    this.locator = locator;
  }

  async ensure(
    node: string,
    migration: string,
    image: string,
  ): Promise<{ present: boolean; pullSeconds: number }> {
    const res = await this.client.ensureImage(await this.locator.urlFor(node), { migration, image });
    return { present: res.present, pullSeconds: res.pullSeconds };
  }
}
