/** The few SGR styles castra prints; each is the identity when colour is off. */
export interface Colors {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** `open` and `close` SGR codes; a close inside the text is re-opened so nested styles survive. */
function style(enabled: boolean, open: number, close: number): (text: string) => string {
  if (!enabled) return (text) => text;
  const start = `\x1b[${open}m`;
  const end = `\x1b[${close}m`;
  return (text) => start + text.replaceAll(end, end + start) + end;
}

export function makeColors(enabled: boolean): Colors {
  return {
    bold: style(enabled, 1, 22),
    dim: style(enabled, 2, 22),
    red: style(enabled, 31, 39),
    green: style(enabled, 32, 39),
    yellow: style(enabled, 33, 39),
    cyan: style(enabled, 36, 39),
  };
}
