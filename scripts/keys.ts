// `bun run keys [dir]`: generates the RS256 key pair and the master key (never overwrites).
import { ensureKeyFiles } from "../src/shared/auth/keygen";

const dir = process.argv[2] ?? "infra/keys";
const { created, paths } = await ensureKeyFiles(dir);
console.log(created.length > 0 ? `created ${created.join(", ")}` : `keys already present in ${dir}`);
console.log(`private: ${paths.privateKey}\npublic:  ${paths.publicKey}\nmaster:  ${paths.masterKey}`);
