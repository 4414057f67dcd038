import { pbkdf2, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

/**
 * The password hash formats auth can verify: its own (argon2id) and those the monolith stored
 * (bcrypt, passlib's pbkdf2-sha256, argon2 of any variant). Anything else is refused, at import
 * and at sign-in.
 */
export type PasswordHashFormat = "argon2id" | "argon2i" | "argon2d" | "bcrypt" | "pbkdf2-sha256";

/**
 * Bounds on the work a stored hash may ask for. A hash is data: one planted (or imported) with
 * 2^31 bcrypt rounds or a billion pbkdf2 iterations would hold a hashing slot for minutes on every
 * attempt, so such a hash is not a format we know and never verifies.
 */
export const HASH_WORK_LIMITS = {
  /** bcrypt's cost is log2 of its rounds; the monolith used 12, 16 is ~16× slower than that. */
  bcryptMaxCost: 16,
  /** passlib's default is 29000; OWASP's 2023 advice for pbkdf2-sha256 is 600000. */
  pbkdf2MaxRounds: 1_000_000,
  /** KiB; 1 GiB. */
  argon2MaxMemoryKib: 1_048_576,
  argon2MaxTimeCost: 16,
  argon2MaxParallelism: 16,
} as const;

const BCRYPT = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;
const PBKDF2_SHA256 = /^\$pbkdf2-sha256\$([1-9]\d{0,9})\$([./A-Za-z0-9]+)\$([./A-Za-z0-9]{43})$/;
const ARGON2 =
  /^\$(argon2id|argon2i|argon2d)\$v=(\d+)\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

/** pbkdf2-sha256 yields 32 bytes, as passlib stores them. */
const PBKDF2_KEY_BYTES = 32;
/** bcrypt reads at most 72 bytes of a password; the monolith's hashes were made on those. */
const BCRYPT_MAX_PASSWORD_BYTES = 72;

export interface Argon2Params {
  variant: "argon2id" | "argon2i" | "argon2d";
  version: number;
  memoryKib: number;
  timeCost: number;
  parallelism: number;
}

/** The format of a stored hash, or `undefined` when it is none auth can verify (unknown, malformed, or asking for unbounded work). */
export function passwordHashFormat(hash: string): PasswordHashFormat | undefined {
  const argon2 = argon2Params(hash);
  if (argon2) return argon2.variant;
  if (bcryptCost(hash) !== undefined) return "bcrypt";
  if (parsePbkdf2Sha256(hash)) return "pbkdf2-sha256";
  return undefined;
}

/** The parameters of an argon2 hash within the work limits, or `undefined`. */
export function argon2Params(hash: string): Argon2Params | undefined {
  const match = ARGON2.exec(hash);
  if (!match) return undefined;
  const [, variant, version, memory, time, parallelism] = match;
  const params: Argon2Params = {
    variant: variant as Argon2Params["variant"],
    version: Number(version),
    memoryKib: Number(memory),
    timeCost: Number(time),
    parallelism: Number(parallelism),
  };
  const bounded =
    params.memoryKib <= HASH_WORK_LIMITS.argon2MaxMemoryKib &&
    params.timeCost >= 1 &&
    params.timeCost <= HASH_WORK_LIMITS.argon2MaxTimeCost &&
    params.parallelism >= 1 &&
    params.parallelism <= HASH_WORK_LIMITS.argon2MaxParallelism;
  return bounded ? params : undefined;
}

/**
 * Verifies `password` against a stored hash of any format `passwordHashFormat` knows; `false` for
 * the rest. The comparisons are the libraries' (Bun.password) or timing-safe (pbkdf2).
 */
export async function verifyLegacyHash(password: string, hash: string): Promise<boolean> {
  switch (passwordHashFormat(hash)) {
    case "argon2id":
    case "argon2i":
    case "argon2d":
      return Bun.password.verify(password, hash);
    case "bcrypt":
      return Bun.password.verify(bcryptPassword(password), hash, "bcrypt");
    case "pbkdf2-sha256":
      return verifyPbkdf2Sha256(password, hash);
    default:
      return false;
  }
}

function bcryptCost(hash: string): number | undefined {
  const match = BCRYPT.exec(hash);
  if (!match) return undefined;
  const cost = Number(match[1]);
  return cost >= 4 && cost <= HASH_WORK_LIMITS.bcryptMaxCost ? cost : undefined;
}

/**
 * bcrypt implementations (the monolith's included) hash only the first 72 bytes of a password.
 * Bun.password pre-hashes a longer one instead, which would never match those hashes, so it gets
 * the same 72 bytes.
 */
function bcryptPassword(password: string): string | Uint8Array {
  const bytes = new TextEncoder().encode(password);
  return bytes.length > BCRYPT_MAX_PASSWORD_BYTES ? bytes.subarray(0, BCRYPT_MAX_PASSWORD_BYTES) : password;
}

interface Pbkdf2Sha256Hash {
  rounds: number;
  salt: Buffer;
  key: Buffer;
}

function parsePbkdf2Sha256(hash: string): Pbkdf2Sha256Hash | undefined {
  const match = PBKDF2_SHA256.exec(hash);
  if (!match) return undefined;
  const [, rounds, salt, key] = match as unknown as [string, string, string, string];
  const parsed = { rounds: Number(rounds), salt: fromAdaptedBase64(salt), key: fromAdaptedBase64(key) };
  if (parsed.rounds > HASH_WORK_LIMITS.pbkdf2MaxRounds) return undefined;
  if (!parsed.salt || parsed.key?.length !== PBKDF2_KEY_BYTES) return undefined;
  return parsed as Pbkdf2Sha256Hash;
}

const pbkdf2Async = promisify(pbkdf2);

async function verifyPbkdf2Sha256(password: string, hash: string): Promise<boolean> {
  const parsed = parsePbkdf2Sha256(hash);
  if (!parsed) return false;
  const derived = await pbkdf2Async(password, parsed.salt, parsed.rounds, PBKDF2_KEY_BYTES, "sha256");
  return timingSafeEqual(derived, parsed.key);
}

/**
 * passlib's "adapted base64": standard base64 with `.` for `+` and no padding. A length that no
 * byte string encodes to (one past a multiple of 4) is malformed.
 */
export function fromAdaptedBase64(text: string): Buffer | undefined {
  if (text.length % 4 === 1) return undefined;
  return Buffer.from(text.replaceAll(".", "+"), "base64");
}

/** The inverse of `fromAdaptedBase64`, for tests and tools that write passlib's format. */
export function toAdaptedBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replaceAll("+", ".").replace(/=+$/, "");
}
