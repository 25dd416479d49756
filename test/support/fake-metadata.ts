import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { METADATA_ADDRESS, shellQuote } from "../../src/metadata/guestfwd.js";

/** What test/support/fake-metadata.mjs serves to a guest, one QEMU-started process per connection. */
export interface FakeMetadata {
  /** The token every PUT of `latest/api/token` gets, and the only one GETs may carry. */
  token: string;
  /** Bodies by request path (`/latest/meta-data/hostname`, ...); anything else is a 404. */
  paths: Record<string, string>;
}

const RESPONDER = fileURLToPath(new URL("fake-metadata.mjs", import.meta.url));

/** Writes the table to `tableFile` and returns the `guestfwd=` value of `-netdev user` that serves it. */
export function fakeMetadataGuestfwd(tableFile: string, metadata: FakeMetadata): string {
  writeFileSync(tableFile, JSON.stringify(metadata));
  const command = [process.execPath, RESPONDER, tableFile].map(shellQuote).join(" ");
  // QEMU's option parser reads ",," as a literal comma.
  return `tcp:${METADATA_ADDRESS}:80-cmd:${command}`.replaceAll(",", ",,");
}
