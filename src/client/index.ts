// The SDK ships as its own package: it imports nothing from the server but the zod-typed tool
// contract. Wire types live in ./protocol (JourneyConfig and JourneyView among them);
// test/client/package.test.ts holds them equal to the server's.
export * from "./chat-stream";
export * from "./device-client";
export * from "./protocol";
export * from "./tools";
