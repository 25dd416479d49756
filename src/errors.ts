/** Exit codes of docs/design.md (sysexits). Only `runCli` turns them into the process exit code. */
export const ExitCode = {
  ok: 0,
  vmError: 1,
  /** `doctor`: at least one check failed. */
  checkFailed: 1,
  usage: 64,
  dataErr: 65,
  noInput: 66,
  unavailable: 69,
  software: 70,
  toolMissing: 72,
  cantCreate: 73,
  ioErr: 74,
  tempFail: 75,
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorDetails {
  detail?: string;
  hint?: string;
  cause?: unknown;
}

/** Every failure a user can see: a headline, the detail, a hint with the next command, an exit code. */
export class CastraError extends Error {
  readonly detail?: string;
  readonly hint?: string;

  constructor(
    readonly headline: string,
    readonly exitCode: ExitCodeValue,
    details: ErrorDetails = {},
  ) {
    super(headline, { cause: details.cause });
    this.name = new.target.name;
    this.detail = details.detail;
    this.hint = details.hint;
  }
}

const withCode = (code: ExitCodeValue) =>
  class extends CastraError {
    constructor(headline: string, details?: ErrorDetails) {
      super(headline, code, details);
    }
  };

export class UsageError extends withCode(ExitCode.usage) {}
export class DataError extends withCode(ExitCode.dataErr) {}
export class InputMissingError extends withCode(ExitCode.noInput) {}
export class UnavailableError extends withCode(ExitCode.unavailable) {}
export class LaunchError extends withCode(ExitCode.software) {}
export class ToolMissingError extends withCode(ExitCode.toolMissing) {}
export class CannotCreateError extends withCode(ExitCode.cantCreate) {}
export class IoError extends withCode(ExitCode.ioErr) {}
export class LockTimeoutError extends withCode(ExitCode.tempFail) {}
export class InterruptedError extends withCode(ExitCode.interrupted) {}

/** A link found where castra writes: never followed, named, exit 73. */
export function linkRefused(path: string, cause?: unknown): CannotCreateError {
  return new CannotCreateError(`Refusing to follow the symbolic link ${path}`, {
    detail:
      "castra never writes (or lets QEMU write) through a link inside .castra/: a link planted there, " +
      "in a clone or a tarball, could make it overwrite any file you own.",
    hint: `remove the link (rm ${path}), then run the command again`,
    cause,
  });
}

/** Maps a Node filesystem error on `path` to the matching CastraError (73, 74 or 66). */
export function fsError(err: unknown, action: string, path: string): CastraError {
  if (err instanceof CastraError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const reason = err instanceof Error ? err.message : String(err);
  switch (code) {
    // O_NOFOLLOW met a link at the file's own name.
    case "ELOOP":
      return linkRefused(path, err);
    case "EROFS":
      return new CannotCreateError(`Cannot ${action}: the file system is read-only`, {
        detail: `${path}: ${reason}`,
        hint: `move the project to a writable disk, or remount it read-write (findmnt -T ${path})`,
        cause: err,
      });
    case "EACCES":
    case "EPERM":
      return new CannotCreateError(`Cannot ${action}: permission denied`, {
        detail: `${path}: ${reason}`,
        hint: `check the permissions of ${path} (ls -ld ${path}) or run castra as its owner`,
        cause: err,
      });
    case "ENOSPC":
    case "EDQUOT":
      return new IoError(`Cannot ${action}: no space left on device`, {
        detail: `${path}: ${reason}`,
        hint: `free some space (df -h ${path}), then run the command again`,
        cause: err,
      });
    case "ENOENT":
      return new InputMissingError(`Cannot ${action}: ${path} does not exist`, {
        detail: reason,
        cause: err,
      });
    default:
      return new IoError(`Cannot ${action}`, {
        detail: `${path}: ${reason}`,
        hint: "check the disk and the path, then run the command again",
        cause: err,
      });
  }
}
