export interface Memory {
  id: string;
  text: string;
  createdAt: Date;
}

export interface ScoredMemory extends Memory {
  /** Cosine similarity to the query, -1..1. */
  score: number;
}

export interface NewMemory {
  id: string;
  text: string;
  vector: number[];
  createdAt?: Date;
}

export interface MemoryPage {
  items: Memory[];
  nextCursor?: string;
}

/**
 * Long-term memory of one user at a time: every method takes the user id and never sees another
 * user's memories. Adapters: Qdrant (QDRANT_URL) and the chat schema in PostgreSQL/PGlite.
 */
export interface MemoryStore {
  readonly kind: string;
  /** Creates what the store needs (collection, indexes); safe to call on every start. */
  init(): Promise<void>;
  add(userId: string, memories: NewMemory[]): Promise<void>;
  /** The `limit` memories most similar to `vector` with a score of at least `minScore`, best first. */
  search(userId: string, vector: number[], limit: number, minScore: number): Promise<ScoredMemory[]>;
  list(userId: string, limit: number, cursor?: string): Promise<MemoryPage>;
  /** False when the user has no memory with that id. */
  delete(userId: string, id: string): Promise<boolean>;
  deleteAll(userId: string): Promise<number>;
  /** Erases every memory of a deleted account, unconditionally (no count first); idempotent. */
  deleteUser(userId: string): Promise<void>;
}
