/** Dimensions of the deterministic embedding used by the development model and the test server. */
export const HASH_EMBEDDING_DIMENSIONS = 256;

const STOP_WORDS = new Set(["a", "an", "the", "and", "or", "of", "to", "in", "on", "is", "are", "be", "it", "that"]);

/** Lowercased word tokens with a crude plural/suffix fold, so "projects" and "project" meet. */
function tokens(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [])
    .filter((word) => !STOP_WORDS.has(word))
    .map((word) => (word.length > 4 ? word.replace(/(ing|es|s)$/, "") : word));
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * A hashed bag of words, L2-normalised: texts sharing words have a high cosine similarity, the
 * same text always gives the same vector. Not semantic, but enough to exercise retrieval.
 */
export function hashEmbedding(text: string, dimensions = HASH_EMBEDDING_DIMENSIONS): number[] {
  const vector = new Array<number>(dimensions).fill(0);
  for (const word of tokens(text)) {
    const hash = fnv1a(word);
    vector[hash % dimensions]! += (hash & 0x8000_0000) === 0 ? 1 : -1;
  }
  const norm = Math.hypot(...vector);
  // An empty text still needs a valid direction: a fixed unit vector.
  if (norm === 0) return vector.map((_, index) => (index === 0 ? 1 : 0));
  return vector.map((value) => value / norm);
}

export const countWords = (text: string): number => tokens(text).length;
