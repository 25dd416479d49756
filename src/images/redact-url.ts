/** What castra shows in place of a URL's password, or of a lone user name (often a token). */
const HIDDEN = "***";

/** `//userinfo@` (with or without a well-formed scheme): it ends at the last `@` before a path, query or fragment. */
const USERINFO = /\/\/([^\s/?#]*)@/g;

/**
 * Text as castra may show it (terminal, logs, JSON, error messages): in every URL in it, `user:password@`
 * becomes `user:***@` and a lone `token@` becomes `***@`. Works on text that does not parse as a URL too.
 */
export function redactUrl(text: string): string {
  return text.replace(USERINFO, (_, userinfo: string) => {
    const colon = userinfo.indexOf(":");
    return `//${colon < 0 ? HIDDEN : `${userinfo.slice(0, colon)}:${HIDDEN}`}@`;
  });
}
