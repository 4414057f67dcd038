// Sign-in with the password hashes the monolith stored (bcrypt, passlib's pbkdf2-sha256, argon2 of
// other variants and costs): they verify, are replaced by the current argon2id on success, count as
// failed attempts when wrong, and a hostile hash asking for unbounded work is refused at once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import bcrypt from "bcryptjs";
import { eq } from "drizzle-orm";
import {
  argon2Params,
  HASH_WORK_LIMITS,
  passwordHashFormat,
  toAdaptedBase64,
  verifyLegacyHash,
} from "../../src/auth/legacy-hashes";
import { PasswordHasher } from "../../src/auth/passwords";
import { users } from "../../src/auth/tables";
import { loadEnv } from "../../src/shared/env";
import { createTestContext, type TestContext } from "../../src/shared/testing";
import { errorCode, FAST_HASH, PASSWORD, post, randomIp, registerUser, startAuth } from "./helpers";

/** Made by passlib 1.7.4: `pbkdf2_sha256.using(rounds=29000).hash("correct horse battery staple")`. */
const PASSLIB_VECTOR = {
  password: "correct horse battery staple",
  hash: "$pbkdf2-sha256$29000$zpkzxhiDUAqhFAIgBADAOA$1Aif0xHvRhwj5skVALbnKoZ7wvh0zBST1GlsUTePin4",
};
/** Also passlib's, with `.` (its `+`) in both salt and digest and a non-ASCII password. */
const PASSLIB_DOTTED_VECTOR = {
  password: "Tr0ub4dor&3 ünïcode",
  hash: "$pbkdf2-sha256$1000$.x8D4HxPKaX0Psd4b20NAQ$.faqC7n98FvGolKFLUbaKT/5X3w6oSGeEec/FMlPRHQ",
};

const LEGACY_PASSWORD = "monolith password 1";

/** passlib's format, computed with node:crypto: `$pbkdf2-sha256$<rounds>$<ab64 salt>$<ab64 digest>`. */
function passlibPbkdf2(password: string, rounds = 29_000): string {
  const salt = randomBytes(16);
  const digest = pbkdf2Sync(password, salt, rounds, 32, "sha256");
  return `$pbkdf2-sha256$${rounds}$${toAdaptedBase64(salt)}$${toAdaptedBase64(digest)}`;
}

/** bcryptjs writes `$2b$`; given a `$2a$` salt it computes and writes a real `$2a$` hash. */
const bcryptHash = (password: string, minor: "a" | "b" = "b") =>
  bcrypt.hashSync(password, bcrypt.genSaltSync(4).replace(/^\$2b\$/, `$2${minor}$`));

describe("passwordHashFormat", () => {
  test("names each format the monolith stored, and ours", async () => {
    expect(passwordHashFormat(bcryptHash("x", "a"))).toBe("bcrypt");
    expect(passwordHashFormat(bcryptHash("x", "b"))).toBe("bcrypt");
    expect(passwordHashFormat(bcryptHash("x").replace(/^\$2b\$/, "$2y$"))).toBe("bcrypt");
    expect(passwordHashFormat(PASSLIB_VECTOR.hash)).toBe("pbkdf2-sha256");
    for (const algorithm of ["argon2id", "argon2i", "argon2d"] as const) {
      expect(passwordHashFormat(await Bun.password.hash("x", { algorithm, memoryCost: 4096, timeCost: 1 }))).toBe(
        algorithm,
      );
    }
  });

  test("anything else is unknown: other schemes, malformed strings, unbounded work", () => {
    const hostileRounds = PASSLIB_VECTOR.hash.replace("$29000$", `$${HASH_WORK_LIMITS.pbkdf2MaxRounds + 1}$`);
    for (const hash of [
      "",
      "plaintext",
      "$1$saltsalt$abcdefghijklmnopqrstuv",
      "$pbkdf2-sha1$29000$N2YMIWQsBWBMae09x1jrPQ$1t8iyB2A.WF/Z5JZv.lfCIhXXN33",
      "$pbkdf2-sha256$29000$zpkzxhiDUAqhFAIgBADAOA$short",
      "$pbkdf2-sha256$0$zpkzxhiDUAqhFAIgBADAOA$1Aif0xHvRhwj5skVALbnKoZ7wvh0zBST1GlsUTePin4",
      hostileRounds,
      "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
      "$2x$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
      "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
      "$argon2id$v=19$m=4096,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
      "$argon2id$v=19$m=4096,t=1,p=1",
      ` ${PASSLIB_VECTOR.hash}`,
    ]) {
      expect(passwordHashFormat(hash)).toBeUndefined();
    }
  });
});

describe("verifyLegacyHash", () => {
  test("passlib's own pbkdf2-sha256 hashes verify, and only with their password", async () => {
    for (const vector of [PASSLIB_VECTOR, PASSLIB_DOTTED_VECTOR]) {
      expect(await verifyLegacyHash(vector.password, vector.hash)).toBe(true);
      expect(await verifyLegacyHash(`${vector.password}!`, vector.hash)).toBe(false);
    }
  });

  test("pbkdf2-sha256 made with node:crypto in passlib's format verifies", async () => {
    const hash = passlibPbkdf2(LEGACY_PASSWORD, 1000);
    expect(await verifyLegacyHash(LEGACY_PASSWORD, hash)).toBe(true);
    expect(await verifyLegacyHash("another one", hash)).toBe(false);
  });

  test("bcrypt $2a$, $2b$ and $2y$ from bcryptjs verify", async () => {
    const b = bcryptHash(LEGACY_PASSWORD, "b");
    for (const hash of [bcryptHash(LEGACY_PASSWORD, "a"), b, b.replace(/^\$2b\$/, "$2y$")]) {
      expect(await verifyLegacyHash(LEGACY_PASSWORD, hash)).toBe(true);
      expect(await verifyLegacyHash("another one", hash)).toBe(false);
    }
  });

  test("bcrypt of a password longer than 72 bytes verifies on those 72 bytes, as the monolith's did", async () => {
    const long = "ä".repeat(50); // 100 bytes
    const hash = bcryptHash(long);
    expect(await verifyLegacyHash(long, hash)).toBe(true);
    expect(await verifyLegacyHash("ä".repeat(36), hash)).toBe(true);
    expect(await verifyLegacyHash("ä".repeat(35), hash)).toBe(false);
  });

  test("a hostile hash with huge rounds is refused without doing the work", async () => {
    const salt = toAdaptedBase64(randomBytes(16));
    const digest = toAdaptedBase64(randomBytes(32));
    const started = performance.now();
    expect(await verifyLegacyHash("x", `$pbkdf2-sha256$4294967295$${salt}$${digest}`)).toBe(false);
    expect(await verifyLegacyHash("x", `$pbkdf2-sha256$9999999999$${salt}$${digest}`)).toBe(false);
    expect(await verifyLegacyHash("x", bcryptHash("x").replace(/^\$2b\$04\$/, "$2b$31$"))).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });

  test("the unknown e-mail path still costs one argon2id verification and answers false", async () => {
    const hasher = new PasswordHasher(loadEnv({ SERVICE_NAME: "auth", NODE_ENV: "test", ...FAST_HASH }));
    expect(await hasher.verify("x", undefined)).toBe(false);
    expect(await hasher.verify("x", "not a hash")).toBe(false);
    expect(await hasher.verify(LEGACY_PASSWORD, bcryptHash(LEGACY_PASSWORD))).toBe(true);
  });
});

describe("sign-in with a legacy hash", () => {
  let ctx: TestContext;
  let auth: Awaited<ReturnType<typeof startAuth>>;

  beforeAll(async () => {
    ctx = await createTestContext();
    // Each test signs in from its own forwarded address, as the other sign-in tests do.
    auth = await startAuth(ctx, { env: { TRUSTED_PROXY_HOPS: "1" } });
  });
  afterAll(() => ctx.close());

  /** A registered user whose stored hash is replaced by `hash`, as the importer writes it. */
  async function importedUser(hash: string) {
    const { user } = await registerUser(auth.url);
    await auth.platform.db.update(users).set({ passwordHash: hash }).where(eq(users.id, user.id));
    return { email: user.email, id: user.id, ip: randomIp() };
  }

  async function storedHash(userId: string): Promise<string> {
    const [row] = await auth.platform.db.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId));
    return row?.hash ?? "";
  }

  const login = (who: { email: string; ip: string }, password: string) =>
    post(auth.url, "/login", { email: who.email, password }, { "x-forwarded-for": who.ip });

  /** The current parameters, as FAST_HASH configures the test server. */
  const isCurrentArgon2id = (hash: string) =>
    expect(argon2Params(hash)).toEqual({
      variant: "argon2id",
      version: 19,
      memoryKib: Number(FAST_HASH.PASSWORD_HASH_MEMORY_KIB),
      timeCost: Number(FAST_HASH.PASSWORD_HASH_TIME_COST),
      parallelism: 1,
    });

  const legacyFormats: Array<[string, () => string | Promise<string>]> = [
    ["bcrypt $2a$", () => bcryptHash(LEGACY_PASSWORD, "a")],
    ["bcrypt $2b$", () => bcryptHash(LEGACY_PASSWORD, "b")],
    ["bcrypt $2y$", () => bcryptHash(LEGACY_PASSWORD).replace(/^\$2b\$/, "$2y$")],
    ["pbkdf2-sha256 (passlib format)", () => passlibPbkdf2(LEGACY_PASSWORD)],
    ["argon2i", () => Bun.password.hash(LEGACY_PASSWORD, { algorithm: "argon2i", memoryCost: 4096, timeCost: 1 })],
    [
      "argon2id of other costs",
      () => Bun.password.hash(LEGACY_PASSWORD, { algorithm: "argon2id", memoryCost: 8192, timeCost: 2 }),
    ],
  ];

  for (const [name, make] of legacyFormats) {
    test(`${name}: signs in, the hash becomes the current argon2id, and signing in still works`, async () => {
      const who = await importedUser(await make());
      const first = await login(who, LEGACY_PASSWORD);
      expect(first.status).toBe(200);
      const rehashed = await storedHash(who.id);
      isCurrentArgon2id(rehashed);
      expect(await Bun.password.verify(LEGACY_PASSWORD, rehashed)).toBe(true);
      expect((await login(who, LEGACY_PASSWORD)).status).toBe(200);
      expect(await storedHash(who.id)).toBe(rehashed);
    });
  }

  test("passlib's own hash signs in", async () => {
    const who = await importedUser(PASSLIB_VECTOR.hash);
    expect((await login(who, PASSLIB_VECTOR.password)).status).toBe(200);
    isCurrentArgon2id(await storedHash(who.id));
  });

  test("a current argon2id hash is left as it is", async () => {
    const session = await registerUser(auth.url);
    const before = await storedHash(session.user.id);
    isCurrentArgon2id(before);
    const who = { email: session.user.email, ip: randomIp() };
    expect((await login(who, PASSWORD)).status).toBe(200);
    expect(await storedHash(session.user.id)).toBe(before);
  });

  test("a wrong password against a legacy hash is refused, counted as a failure, and the hash kept", async () => {
    const hash = bcryptHash(LEGACY_PASSWORD);
    const who = await importedUser(hash);
    const threshold = auth.platform.env.AUTH_LOCKOUT_THRESHOLD;
    for (let attempt = 0; attempt < threshold; attempt++) {
      const refused = await login(who, "not the password");
      expect(refused.status).toBe(401);
      expect(await errorCode(refused)).toBe("invalid_credentials");
    }
    const locked = await login(who, LEGACY_PASSWORD);
    expect(locked.status).toBe(429);
    expect(await errorCode(locked)).toBe("login_locked");
    expect(await storedHash(who.id)).toBe(hash);
  });

  test("concurrent sign-ins of one legacy user all succeed and leave one current hash", async () => {
    const who = await importedUser(passlibPbkdf2(LEGACY_PASSWORD, 1000));
    const responses = await Promise.all([1, 2, 3].map(() => login(who, LEGACY_PASSWORD)));
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200]);
    const rehashed = await storedHash(who.id);
    isCurrentArgon2id(rehashed);
    expect((await login(who, LEGACY_PASSWORD)).status).toBe(200);
  });

  test("a hostile pbkdf2 hash with huge rounds does not hang sign-in: refused at once", async () => {
    const hostile = `$pbkdf2-sha256$4294967295$${toAdaptedBase64(randomBytes(16))}$${toAdaptedBase64(randomBytes(32))}`;
    const who = await importedUser(hostile);
    const started = performance.now();
    const response = await login(who, LEGACY_PASSWORD);
    expect(response.status).toBe(401);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await storedHash(who.id)).toBe(hostile);
  });
});
