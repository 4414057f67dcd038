// The resume scenario, run in every runtime the app uses against the scripted server playing
// `resumeScript` (test/client/support/scripted-server.ts): a chat turn whose socket closes after
// three chunks goes on after the reconnect, each chunk once; the turns of the user the device does
// not follow are surfaced; a turn the server no longer has fails with `not_resumable`; and
// `close()` fails a stream still waiting with `connection_closed`. Nothing here may use an API of
// one runtime only.
import type * as Sdk from "../../../src/client";

/** The turn the device starts and follows across the reconnect. */
export const RESUMED_TURN = "turn-resumed";
/** A turn of the user's that the server lists in `active_turns` but no longer resumes. */
export const OTHER_TURN = "turn-elsewhere";
/** A turn the server accepts to resume and then never answers. */
export const HELD_TURN = "turn-held";
export const CHUNKS_BEFORE_DROP = 3;
export const LAST_SEQ = 5;

export interface ResumeResult {
  seqs: number[];
  text: string;
  finish: string;
  lastSeq: number;
  chatId: string | undefined;
  reconnects: boolean[];
  activeTurns: string[][];
  otherTurn: string;
  afterClose: string;
}

const failureCode = (stream: Sdk.ChatStream) =>
  stream.done.then(
    () => "resolved",
    (error: { code?: string }) => String(error.code),
  );

export async function runResumeScenario(
  sdk: typeof Sdk,
  url: string,
  WebSocketImpl?: Sdk.WebSocketConstructor,
): Promise<ResumeResult> {
  const client = new sdk.DeviceClient({
    url,
    deviceId: "resume-device",
    token: () => "scripted",
    backoff: { initialMs: 20, maxMs: 50 },
    WebSocket: WebSocketImpl,
  });
  const reconnects: boolean[] = [];
  const activeTurns: string[][] = [];
  client.on("close", ({ willReconnect }) => reconnects.push(willReconnect));
  client.on("active_turns", (turns) => activeTurns.push(turns.map((turn) => turn.request_id)));
  try {
    await client.connect();
    const stream = client.chat({ text: "a long answer", requestId: RESUMED_TURN });
    const seqs: number[] = [];
    let text = "";
    for await (const { seq, chunk } of stream) {
      seqs.push(seq);
      text += (chunk as { delta?: string }).delta ?? "";
    }
    const done = await stream.done;
    const otherTurn = await failureCode(client.resumeChat(OTHER_TURN));
    const held = client.resumeChat(HELD_TURN, { afterSeq: 2 });
    client.close();
    return {
      seqs,
      text,
      finish: done.finish_reason,
      lastSeq: stream.lastSeq,
      chatId: stream.chatId,
      reconnects,
      activeTurns,
      otherTurn,
      afterClose: await failureCode(held),
    };
  } finally {
    client.close();
  }
}
