// The fake model's mind, shared by the ai/test mock model and the fake OpenAI server: it reads the
// file text in the prompt and answers the classification or extraction schema deterministically.
// Files mark what they hold with lines such as `TASK: title | project`, `PROJECT: name`,
// `NOTE: title | body`, `EVENT: title @ iso-date`; a file containing `GARBAGE` gets a reply that
// does not match the schema.
export type Purpose = "classification" | "extraction" | "journey_turn";

export function answer(purpose: Purpose, prompt: string): string {
  if (prompt.includes("GARBAGE")) return '{"nonsense": true';
  const lines = prompt.split("\n");
  const tagged = (tag: string) =>
    lines.filter((line) => line.startsWith(`${tag}: `)).map((line) => line.slice(tag.length + 2).trim());
  if (purpose === "classification") {
    const relevant = ["TASK", "PROJECT", "NOTE", "EVENT"].some((tag) => tagged(tag).length > 0);
    return JSON.stringify({ category: relevant ? "tasks" : "other", relevant });
  }
  if (purpose === "extraction") {
    return JSON.stringify({
      projects: tagged("PROJECT").map((name) => ({ name, description: null })),
      tasks: tagged("TASK").map((text) => {
        const [title, project] = text.split(" | ");
        return { title, due: null, notes: null, project: project ?? null };
      }),
      notes: tagged("NOTE").map((text) => {
        const [title, body] = text.split(" | ");
        return { title, body: body ?? title, project: null };
      }),
      events: tagged("EVENT").map((text) => {
        const [title, at] = text.split(" @ ");
        return { title, at, end: null, project: null };
      }),
    });
  }
  return journeyTurn(prompt);
}

/**
 * A setup conversation: the user's last message is `path=<dir>` to give the directory, or "yes"
 * to confirm; anything else gets a question.
 */
function journeyTurn(prompt: string): string {
  const last = prompt.trim().split("\n").at(-1) ?? "";
  const path = /path=(\S+)/.exec(last)?.[1];
  if (path)
    return JSON.stringify({
      reply: `Scan ${path}? Say yes to create it.`,
      updates: JSON.stringify({ path }),
      confirmed: false,
    });
  if (/^yes\b/i.test(last)) return JSON.stringify({ reply: "Creating it.", updates: "{}", confirmed: true });
  return JSON.stringify({ reply: "Which directory should I scan?", updates: "{}", confirmed: false });
}

/** Which schema a structured-output request asks for, from its name. */
export function purposeOf(schemaName: string | undefined): Purpose {
  if (schemaName === "classification" || schemaName === "extraction") return schemaName;
  return "journey_turn";
}
