// The fake OpenAI server's answers for agent tests: the same deterministic brain as the mock
// model, reached over HTTP through the real provider code.
import type { ChatCompletionRequest, ScriptedReply } from "../../../src/shared/testing/fake-openai";
import { answer, purposeOf } from "./brain";

const text = (content: ChatCompletionRequest["messages"][number]["content"]) =>
  typeof content === "string" ? content : (content ?? []).map((part) => part.text ?? "").join("\n");

export function brainReply(request: ChatCompletionRequest): ScriptedReply {
  const purpose = purposeOf(request.response_format?.json_schema?.name);
  const prompt = request.messages.map((message) => text(message.content)).join("\n");
  return { json: JSON.parse(answer(purpose, prompt)) };
}
