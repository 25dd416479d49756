/** How a cell is shown once padded (e.g. coloured); padding is measured on the plain text. */
export type CellPainter = (padded: string, column: number, row: number) => string;

/**
 * Columns padded to their widest cell, two spaces apart, no trailing spaces: easy to read and to cut.
 * The header is row -1 for `paint`.
 */
export function formatTable(header: string[], rows: string[][], paint?: CellPainter): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[], row: number) =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0);
        return paint ? paint(padded, i, row) : padded;
      })
      .join("  ")
      .trimEnd();
  return [line(header, -1), ...rows.map(line)];
}
