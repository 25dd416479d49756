/** What one VM's metadata server allows a guest (docs/design.md, "Guest access"). */
export interface MetadataBounds {
  /** Guest connections served at once; beyond this a connection is closed at once, unanswered. */
  maxConnections: number;
  /** The whole request must arrive within this time after the connection was accepted (else 408). */
  readTimeoutMs: number;
  /** The guest must take the whole answer within this time after it began (else the connection is closed). */
  writeTimeoutMs: number;
  /** Request line plus headers (else 431). */
  maxHeaderBytes: number;
  /** A request body, which only a token PUT may carry and none needs (else 413). */
  maxBodyBytes: number;
}

/**
 * tiny-cloud and cloud-init ask one request at a time and give each 1 s (tiny-cloud) or more; a guest under
 * TCG on a loaded host sends its request in one segment well within 2 s. The write deadline leaves a
 * multi-megabyte user-data time to cross QEMU's user network.
 */
export const METADATA_BOUNDS: MetadataBounds = {
  maxConnections: 8,
  readTimeoutMs: 2_000,
  writeTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 16 * 1024,
};
