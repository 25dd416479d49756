import type { ArtifactKind } from "./catalog-schema.js";
import type { DownloadEvent } from "./download.js";
import type { Placement } from "./file-placement.js";
import type { TransformStep } from "./transforms.js";

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
  // The per-user download cache: found there, waited for, added to, found damaged, or unusable (a warning).
  | (AboutArtifact & { type: "store-hit"; path: string; bytes: number; placement: Placement })
  | (AboutArtifact & { type: "store-wait"; pid: number })
  | (AboutArtifact & { type: "store-add"; path: string; placement: Placement })
  | (AboutArtifact & { type: "store-damaged"; path: string; problem: string })
  | (About & { type: "store-unusable"; store: string; reason: string })
  | (AboutArtifact & { type: "verified"; sha256: string; bytes: number })
  | (AboutArtifact & { type: "transform" } & TransformStep)
  | (About & { type: "ready"; dir: string; files: Partial<Record<ArtifactKind, string>> });

export type ImageEventType = ImageEvent["type"];
