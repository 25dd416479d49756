import { constants } from "node:fs";

// How castra opens its private files: never through a link planted at their own name (private-files.ts has
// the helpers that report a refused link; the code-cache entry uses these flags without them).
const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY } = constants;

/** Every way refuses a link (ELOOP, or EEXIST for `create`). */
export const OPEN_PRIVATE = {
  append: O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW,
  truncate: O_WRONLY | O_TRUNC | O_CREAT | O_NOFOLLOW,
  /** Only a new file: O_EXCL never follows a link either. */
  create: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
  read: O_RDONLY | O_NOFOLLOW,
  readWrite: O_RDWR | O_NOFOLLOW,
} as const;

export type OpenPrivateMode = keyof typeof OPEN_PRIVATE;
