import type { ArtifactKind } from "./catalog.js";
import type { DownloadEvent } from "./download.js";

/** Which image and artifact an event is about. */
interface About {
  /** "alpine-minimal@v1" */
  image: string;
}
interface AboutArtifact extends About {
  artifact: ArtifactKind;
}

/** What the image pipeline reports while it works; the CLI renders these and the image-manager log records them. */
export type ImageEvent =
  | (About & { type: "lock-wait"; pid: number })
  | (About & { type: "cache-hit"; dir: string })
  | (About & { type: "rebuild"; reason: string })
  | (AboutArtifact & DownloadEvent)
  | (AboutArtifact & { type: "verified"; sha256: string; bytes: number })
  | (AboutArtifact & { type: "transform"; name: string; from: string; to: string })
  | (About & { type: "ready"; dir: string; files: Partial<Record<ArtifactKind, string>> });

export type ImageEventType = ImageEvent["type"];
