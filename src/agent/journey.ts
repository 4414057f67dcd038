import { generateText, Output } from "ai";
import { and, eq, ne } from "drizzle-orm";
import { z } from "zod";
import { conflict, notFound } from "../shared/errors";
import type { JourneyResponse, JourneyView } from "../shared/journey-relay";
import type { VerbArgs } from "../shared/verb";
import { canCreate } from "./can-create";
import { type ConfigView, createConfig } from "./configs";
import type { AgentContext } from "./context";
import { configLimitReached } from "./limits";
import { agentTypeOf, type JourneyMessageInput, type JourneyStartInput } from "./model";
import type { AgentType } from "./registry";
import { agentJourneys } from "./tables";
import { assertId, configJsonSchema, typeFor } from "./validate";

type JourneyRow = typeof agentJourneys.$inferSelect;
interface Message {
  role: "assistant" | "user";
  text: string;
}

/**
 * One turn of the model. `updates` is a JSON text rather than a nested schema: every agent type
 * has its own configuration shape, and a string field works with any OpenAI-compatible server.
 */
const Turn = z.object({
  reply: z.string().min(1).max(4000).describe("What to say to the user next: one question, or the summary to confirm"),
  updates: z
    .string()
    .max(60_000)
    .describe("JSON object with the configuration fields learnt from the user's last message, {} if none"),
  confirmed: z.boolean().describe("True only if the user's last message accepts the proposed configuration"),
});

const MAX_MESSAGES = 40;

export type { JourneyView } from "../shared/journey-relay";

/** The REST answer: the journey view and, for one more version, `type` (the same as `agent_type`). */
export const journeyResponse = (view: JourneyView): JourneyResponse => ({ ...view, type: view.agent_type });

function validate(type: AgentType, draft: Record<string, unknown>) {
  const parsed = type.schema.safeParse(draft);
  return parsed.success
    ? { valid: true as const, config: parsed.data, missing: [] as string[] }
    : {
        valid: false as const,
        missing: [...new Set(parsed.error.issues.map((issue) => issue.path.join(".") || "(root)"))],
      };
}

function mergeUpdates(type: AgentType, draft: Record<string, unknown>, updates: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(updates);
  } catch {
    return draft;
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return draft;
  const known = new Set(Object.keys((configJsonSchema(type) as { properties?: object }).properties ?? {}));
  const next = { ...draft };
  for (const [key, value] of Object.entries(parsed)) if (known.has(key) && value !== null) next[key] = value;
  return next;
}

async function converse(ctx: AgentContext, type: AgentType, draft: Record<string, unknown>, messages: Message[]) {
  const schema = JSON.stringify(configJsonSchema(type));
  const state = validate(type, draft);
  const { output } = await generateText({
    model: ctx.models.extract,
    system:
      `You help a user set up the "${type.name}" agent: ${type.description}\n` +
      `Its configuration follows this JSON schema: ${schema}\n` +
      `Current draft: ${JSON.stringify(draft)}\n` +
      (state.valid
        ? "The draft is complete: summarise it and ask the user to confirm or change it."
        : `Still missing or invalid: ${state.missing.join(", ")}. Ask for one thing at a time, in plain words.`) +
      "\nPut every value the user gives in `updates`. Answer only with the JSON object.",
    messages:
      messages.length > 0
        ? messages.map((each) => ({ role: each.role, content: each.text }))
        : [{ role: "user", content: "Hello" }],
    output: Output.object({ schema: Turn, name: "journey_turn" }),
  });
  return output;
}

const view = (row: JourneyRow, type: AgentType, reply: string, config?: ConfigView): JourneyView => ({
  journey_id: row.id,
  agent_type: row.type,
  status: row.status as JourneyView["status"],
  reply,
  draft: row.draft as Record<string, unknown>,
  missing: validate(type, row.draft as Record<string, unknown>).missing,
  ...(config ? { config_id: config.id, config } : {}),
});

/** Opens a setup conversation for `type`; refused up front when the user could not create it anyway. */
export async function startJourney({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, JourneyStartInput>): Promise<JourneyView> {
  const type = typeFor(agentTypeOf(input), user);
  const allowed = await canCreate({ ctx, user, input: { type: type.type } });
  if (!allowed.allowed) throw configLimitReached(allowed.limit);
  const turn = await converse(ctx, type, {}, []);
  const messages: Message[] = [{ role: "assistant", text: turn.reply }];
  const draft = mergeUpdates(type, {}, turn.updates);
  const [row] = await ctx.db
    .insert(agentJourneys)
    .values({ userId: user.userId, type: type.type, draft, messages, status: statusFor(type, draft) })
    .returning();
  return view(row as JourneyRow, type, turn.reply);
}

const statusFor = (type: AgentType, draft: Record<string, unknown>) =>
  validate(type, draft).valid ? "confirming" : "collecting";

/** One user message: the model fills the draft; a confirmed, valid draft becomes a configuration. */
export async function journeyMessage({
  ctx,
  user,
  input,
}: VerbArgs<AgentContext, JourneyMessageInput>): Promise<JourneyView> {
  assertId(input.journey_id, "journey");
  const [row] = await ctx.db
    .select()
    .from(agentJourneys)
    .where(and(eq(agentJourneys.id, input.journey_id), eq(agentJourneys.userId, user.userId)));
  if (!row) throw notFound("journey");
  if (row.status === "completed") throw conflict("journey_completed", "this journey already created its configuration");
  const type = typeFor(row.type, user);
  const wasConfirming = row.status === "confirming";
  let draft = row.draft as Record<string, unknown>;
  const messages = [...(row.messages as Message[])];
  let reply = "";
  let confirmed = input.confirm === true;
  if (input.text !== undefined) {
    messages.push({ role: "user", text: input.text });
    const turn = await converse(ctx, type, draft, messages.slice(-MAX_MESSAGES));
    draft = mergeUpdates(type, draft, turn.updates);
    reply = turn.reply;
    confirmed ||= turn.confirmed && wasConfirming;
  }
  const state = validate(type, draft);
  if (confirmed && !state.valid) {
    if (input.text === undefined)
      throw conflict("journey_incomplete", `the configuration still needs: ${state.missing.join(", ")}`);
    confirmed = false;
  }
  let created: ConfigView | undefined;
  if (confirmed && state.valid) {
    created = await completeOnce(ctx, row, () =>
      createConfig({ ctx, user, input: { type: type.type, config: state.config } }),
    );
    reply = `Created "${created.name}".`;
  }
  if (reply) messages.push({ role: "assistant", text: reply });
  const [saved] = await ctx.db
    .update(agentJourneys)
    .set({
      draft,
      messages: messages.slice(-MAX_MESSAGES),
      status: created ? "completed" : statusFor(type, draft),
      configId: created?.id ?? null,
      updatedAt: new Date(),
    })
    .where(eq(agentJourneys.id, row.id))
    .returning();
  return view(saved as JourneyRow, type, reply, created);
}

/** Claims the journey before creating its configuration, so a double confirmation creates one. */
async function completeOnce(
  ctx: AgentContext,
  row: JourneyRow,
  create: () => Promise<ConfigView>,
): Promise<ConfigView> {
  const claimed = await ctx.db
    .update(agentJourneys)
    .set({ status: "completed", updatedAt: new Date() })
    .where(and(eq(agentJourneys.id, row.id), ne(agentJourneys.status, "completed")))
    .returning({ id: agentJourneys.id });
  if (claimed.length === 0) throw conflict("journey_completed", "this journey already created its configuration");
  try {
    return await create();
  } catch (error) {
    await ctx.db.update(agentJourneys).set({ status: row.status }).where(eq(agentJourneys.id, row.id));
    throw error;
  }
}
