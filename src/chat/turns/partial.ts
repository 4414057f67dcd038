import { readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";

/**
 * The message parts a turn's chunks add up to, as the AI SDK's client would show them: what a turn
 * cut before its end (stopped, or its instance gone) had streamed, to be stored as its message.
 */
export async function partsFromChunks(chunks: unknown[]): Promise<UIMessage["parts"]> {
  if (chunks.length === 0) return [];
  const stream = new ReadableStream<UIMessageChunk>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk as UIMessageChunk);
      controller.close();
    },
  });
  let last: UIMessage | undefined;
  try {
    for await (const message of readUIMessageStream({ stream, terminateOnError: false })) last = message;
  } catch {
    // A chunk the reader refuses ends the rebuild: what came before it is kept.
  }
  return last?.parts ?? [];
}
