import { tierRank } from "../shared/tiers";
import type { VerbArgs } from "../shared/verb";
import type { AgentContext } from "./context";
import { AGENT_TYPES } from "./registry";
import { configJsonSchema } from "./validate";

/** The agent types the registry knows, with the JSON schema of each configuration. */
export async function listCatalog({ user }: VerbArgs<AgentContext>) {
  return {
    agents: AGENT_TYPES.map((each) => ({
      type: each.type,
      name: each.name,
      description: each.description,
      kind: each.kind,
      min_tier: each.minTier,
      available: tierRank(user.tier) >= tierRank(each.minTier),
      config_schema: configJsonSchema(each),
    })),
  };
}
