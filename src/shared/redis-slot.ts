/** What Redis Cluster hashes: the first `{...}` with something inside, else the whole key. */
export function hashTag(key: string): string {
  const open = key.indexOf("{");
  if (open < 0) return key;
  const close = key.indexOf("}", open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

/** CRC16-CCITT (XMODEM), as Redis Cluster's key slots use it. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of new TextEncoder().encode(text)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** CLUSTER KEYSLOT, computed locally: the slot a key (or a channel name) hashes to. */
export const keySlot = (key: string): number => crc16(hashTag(key)) % 16384;
