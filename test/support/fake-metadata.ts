import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { METADATA_ADDRESS } from "../../src/config/model.js";
import { shellQuote } from "../../src/vm/guestfwd.js";

/** What test/support/fake-metadata.mjs serves to a guest, one QEMU-started process per connection. */
export interface FakeMetadata {
  /** The token every PUT of `latest/api/token` gets, and the only one GETs may carry. */
  token: string;
  /** Bodies by request path (`/latest/meta-data/hostname`, ...); anything else is a 404. */
  paths: Record<string, string>;
  /** Serve `latest/user-data` as this many bytes, more than a guest that stops reading can take in. */
  userDataBytes?: number;
  /** A file that gets one line per connection event (see FakeMetadataEvent). */
  log?: string;
}

/**
 * `<pid> open`, `<pid> request <method> <path>`, `<pid> answered <status> <path>`, `<pid> failed <status> <path>
 * <code>` (the guest went away mid-answer), `<pid> abandoned "<bytes>"` (closed before a whole request).
 */
export interface FakeMetadataEvent {
  pid: number;
  event: "open" | "request" | "answered" | "failed" | "abandoned";
  detail: string;
}

const RESPONDER = fileURLToPath(new URL("fake-metadata.mjs", import.meta.url));

/** Writes the table to `tableFile` and returns the `guestfwd=` value of `-netdev user` that serves it. */
export function fakeMetadataGuestfwd(tableFile: string, metadata: FakeMetadata): string {
  writeFileSync(tableFile, JSON.stringify(metadata));
  const command = [process.execPath, RESPONDER, tableFile].map(shellQuote).join(" ");
  // QEMU's option parser reads ",," as a literal comma.
  return `tcp:${METADATA_ADDRESS}:80-cmd:${command}`.replaceAll(",", ",,");
}

/** The events the responders appended to `metadata.log` so far, in order. */
export function readFakeMetadataLog(logFile: string): FakeMetadataEvent[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const [pid, event, ...rest] = line.split(" ");
      return { pid: Number(pid), event: event as FakeMetadataEvent["event"], detail: rest.join(" ") };
    });
}
