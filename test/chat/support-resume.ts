// Helpers for the resumable-turn tests: raw device sockets past hello, the frames of one request,
// and the turn routes (`GET /chat/:chat_id/stream`, `POST /chat/:chat_id/stop`) called as a client would.
import { eventually } from "../../src/shared/testing";
import { rawSocket } from "./gateway/helpers";
import { sseFields } from "./harness";

export type Frame = Record<string, unknown>;
export type DeviceSocket = Awaited<ReturnType<typeof rawSocket>> & { welcome: Frame };

/** A raw device socket that said hello with the token; its welcome is kept apart. */
export async function deviceSocket(wsUrl: string, token: string): Promise<DeviceSocket> {
  const socket = await rawSocket(wsUrl);
  socket.send({ type: "hello", token, device_id: `d-${crypto.randomUUID().slice(0, 8)}`, protocol: 1 });
  const welcome = await socket.next("welcome");
  return { ...socket, welcome };
}

export const isEnd = (frame: Frame) => frame.type === "chat_done" || frame.type === "error";

/** The frames answering one request id (its chunks, its chat_done, errors referring to it), in arrival order. */
export const framesOf = (socket: { frames: Frame[] }, requestId: string) =>
  socket.frames.filter((frame) => frame.request_id === requestId || frame.ref === requestId);

/** Waits until the request's frames satisfy `until`; returns them (as seen last, for the assertion). */
export function framesUntil(
  socket: { frames: Frame[] },
  requestId: string,
  until: (frames: Frame[]) => boolean,
  timeoutMs = 10_000,
): Promise<Frame[]> {
  return eventually(() => framesOf(socket, requestId), until, timeoutMs, 5);
}

/** The request's frames up to and including its chat_done or error. */
export const untilEnd = (socket: { frames: Frame[] }, requestId: string, timeoutMs = 10_000) =>
  framesUntil(socket, requestId, (frames) => frames.some(isEnd), timeoutMs);

/** Waits for at least `count` chat_chunk frames of the request. */
export const untilChunks = (socket: { frames: Frame[] }, requestId: string, count: number) =>
  framesUntil(socket, requestId, (frames) => frames.filter((frame) => frame.type === "chat_chunk").length >= count);

export const chunkFrames = (frames: Frame[]) => frames.filter((frame) => frame.type === "chat_chunk");

/** The text a list of UI message chunks adds up to. */
export const textOf = (chunks: unknown[]) =>
  chunks
    .map((chunk) => chunk as { type: string; delta?: string })
    .filter((chunk) => chunk.type === "text-delta")
    .map((chunk) => chunk.delta ?? "")
    .join("");

/** The turn routes of one chat service, as a client calls them. */
export function turnRoutes(baseUrl: string) {
  const auth = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
  return {
    stream: (token: string | undefined, chatId: string, lastEventId?: string, signal?: AbortSignal) =>
      fetch(`${baseUrl}/api/v1/chat/${chatId}/stream`, {
        headers: {
          ...auth(token),
          accept: "text/event-stream",
          ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
        },
        signal,
      }),
    stop: (token: string | undefined, chatId: string) =>
      fetch(`${baseUrl}/api/v1/chat/${chatId}/stop`, { method: "POST", headers: auth(token) }),
    conversation: (token: string, chatId: string) =>
      fetch(`${baseUrl}/api/v1/chat/conversations/${chatId}`, { headers: auth(token) }),
  };
}

/** Reads SSE events off an open response until `count` chunk events have arrived (the reader stays open). */
export async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  count: number,
): Promise<Array<{ id?: string; chunk: unknown }>> {
  const decoder = new TextDecoder();
  let buffered = "";
  const received: Array<{ id?: string; chunk: unknown }> = [];
  while (received.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    const events = buffered.split("\n\n");
    buffered = events.pop() ?? "";
    for (const event of events) {
      const { id, data } = sseFields(event);
      if (data && data !== "[DONE]") received.push({ id, chunk: JSON.parse(data) });
    }
  }
  return received;
}

/** An assistant message as `GET /chat/conversations/:id` shows it. */
export interface MessageView {
  id: string;
  role: string;
  status: string;
  parts: Array<{ type: string; text?: string }>;
}
