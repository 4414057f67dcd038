import { z } from "zod";
import { requireTier } from "../shared/auth/guard";
import type { AuthUser } from "../shared/auth/verifier";
import { issueDetails, notFound, unprocessable } from "../shared/errors";
import { type AgentType, agentType } from "./registry";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are UUIDs; anything else names nothing, which is a 404 like another user's id. */
export function assertId(id: string, what: string): void {
  if (!UUID.test(id)) throw notFound(what);
}

/** The registry entry of `type`, 422 when unknown, 403 when the user's tier is below its minimum. */
export function typeFor(type: string, user?: Pick<AuthUser, "tier">): AgentType {
  const found = agentType(type);
  if (!found) throw unprocessable(`unknown agent type ${JSON.stringify(type.slice(0, 64))}`, [{ path: "type" }]);
  if (user) requireTier(user, found.minTier);
  return found;
}

/** Parses a configuration against its type's schema (defaults applied), or a 422 listing the issues. */
export function parseConfig(type: AgentType, config: unknown): Record<string, unknown> {
  const parsed = type.schema.safeParse(config);
  if (!parsed.success) {
    throw unprocessable(
      "configuration does not match the agent type's schema",
      issueDetails(parsed.error.issues, ["config"]),
    );
  }
  return parsed.data;
}

/** The JSON schema clients render forms from: input side, so defaulted fields are optional. */
export const configJsonSchema = (type: AgentType) => z.toJSONSchema(type.schema, { io: "input" });
