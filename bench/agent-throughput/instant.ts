import { MockLanguageModelV4 } from "ai/test";
import type { AgentModels } from "../../src/agent/context";
import type { DevicePush, DeviceRpc } from "../../src/shared/device-rpc";

/** A device that answers at once: every directory holds FILES files, each with one task. */
export function instantDevice(files: number): DeviceRpc & DevicePush {
  let ids = 0;
  return {
    async call({ name, args }) {
      const input = args as Record<string, unknown>;
      switch (name) {
        case "fs_list_dir": {
          const offset = Number(input.cursor ?? 0);
          const page = Array.from({ length: Math.min(200, files - offset) }, (_, n) => ({
            path: `${String(input.path)}/f${offset + n}.md`,
            type: "file",
            size: 40,
            mtime: 0,
          }));
          return { entries: page, next_cursor: offset + 200 < files ? String(offset + 200) : undefined };
        }
        case "fs_read_file":
          return { content: `TASK: follow up on ${String(input.path)}`, encoding: "utf8", truncated: false };
        default:
          ids++;
          return { id: String(ids), ...input };
      }
    },
    isOnline: async () => true,
    devices: async () => [],
    push: async () => 1,
  };
}

const usage = {
  inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 },
  outputTokens: { total: 1, text: 1, reasoning: 0 },
};

/** A model that answers at once: every file is relevant and holds one task. */
export function instantModels(): AgentModels {
  const model = new MockLanguageModelV4({
    doGenerate: async (call) => {
      const name = (call.responseFormat as { name?: string } | undefined)?.name;
      const json =
        name === "classification"
          ? { category: "tasks", relevant: true }
          : {
              projects: [],
              tasks: [{ title: "follow up", due: null, notes: null, project: null }],
              notes: [],
              events: [],
            };
      return {
        content: [{ type: "text", text: JSON.stringify(json) }],
        finishReason: { unified: "stop", raw: "stop" },
        usage,
        warnings: [],
      };
    },
  });
  return { classify: model, extract: model };
}
