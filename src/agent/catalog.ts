import { tierRank } from "../shared/tiers";
import { AGENT_TYPES } from "./registry";
import { configJsonSchema } from "./validate";

/** The agent types the registry knows, with the JSON schema of each configuration. */
export function listCatalog({ tier }: { tier?: Parameters<typeof tierRank>[0] } = {}) {
  return {
    agents: AGENT_TYPES.map((each) => ({
      type: each.type,
      name: each.name,
      description: each.description,
      kind: each.kind,
      min_tier: each.minTier,
      available: tier === undefined ? undefined : tierRank(tier) >= tierRank(each.minTier),
      config_schema: configJsonSchema(each),
    })),
  };
}
