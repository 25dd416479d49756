/** A word a person can paste into a POSIX shell: left alone when plain, else single-quoted. Never executed by castra. */
export function pasteable(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
