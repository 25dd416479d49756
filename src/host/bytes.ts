/** "2.0 GiB", "512 MiB", "1.5 KiB", "12 B": short, binary units, for tables and messages. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let index = 0;
  while (Math.abs(value) >= 1024 && index < units.length - 1) {
    value /= 1024;
    index += 1;
  }
  if (index === 0) return `${bytes} B`;
  // Whole MiB stay whole ("512 MiB"); GiB and above keep one decimal ("2.0 GiB").
  const text = index === 2 && Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[index]}`;
}
