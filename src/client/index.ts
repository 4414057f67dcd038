// The SDK ships as its own package: it imports nothing from the server but the zod-typed tool
// contract. Wire types live in ./protocol (JourneyConfig and JourneyView among them);
// test/client/package.test.ts holds them equal to the server's. The HTTP API's client is
// openapi-fetch (the package's one dependency) typed by the generated ./api-types.
export * from "./api-client";
export * from "./backup";
export * from "./chat-stream";
export * from "./device-client";
export * from "./protocol";
export * from "./tools";
