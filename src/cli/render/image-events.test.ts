import assert from "node:assert/strict";
import { test } from "node:test";
import type { ImageEvent } from "../../images/events.js";
import { captureIO } from "../io.js";
import { renderImageEvents } from "./image-events.js";
import { formatSeconds } from "./progress.js";

const image = "alpine-minimal@v1";
const MIB = 1024 * 1024;
const url = "https://dl-cdn.example/alpine.vhd";

const pipeline: ImageEvent[] = [
  {
    type: "download-start",
    image,
    artifact: "root_disk",
    url,
    bytes: 122 * MIB,
    resumeFrom: 40 * MIB,
    attempt: 1,
  },
  { type: "progress", image, artifact: "root_disk", received: 80 * MIB, total: 122 * MIB, idleMs: 0 },
  { type: "progress", image, artifact: "root_disk", received: 122 * MIB, total: 122 * MIB, idleMs: 0 },
  { type: "download-done", image, artifact: "root_disk", bytes: 82 * MIB, seconds: 3.2 },
  { type: "verified", image, artifact: "root_disk", sha256: "ab".repeat(32), bytes: 122 * MIB },
  {
    type: "transform",
    image,
    artifact: "root_disk",
    name: "strip_vhd_footer",
    from: "vhd",
    to: "raw",
    summary: "Stripped the VHD footer",
  },
  {
    type: "transform",
    image,
    artifact: "root_disk",
    name: "qemu_img_convert",
    from: "raw",
    to: "qcow2",
    summary: "Converted raw → qcow2",
  },
  { type: "ready", image, dir: "/p/.castra/images/alpine-minimal/v1", files: {} },
];

test("without a TTY, each phase is one plain line and progress prints nothing", () => {
  const io = captureIO({ cwd: "/p" });
  const render = renderImageEvents(io);
  for (const e of pipeline) render(e);
  assert.equal(
    io.stderr(),
    [
      `Downloading root disk (122 MiB) from ${url}`,
      "Resuming download at 40 MiB",
      "Downloaded in 3.2 s (25.6 MiB/s)",
      "Verified sha256 of root disk",
      "Stripped the VHD footer",
      "Converted raw → qcow2",
      "✓ alpine-minimal@v1 ready in .castra/images/alpine-minimal/v1",
      "",
    ].join("\n"),
  );
  assert.equal(io.stdout(), "");
});

test("a cache hit is one line, with no ready line after it", () => {
  const io = captureIO({ cwd: "/p" });
  const render = renderImageEvents(io);
  render({ type: "cache-hit", image, dir: "/p/x" });
  render({ type: "ready", image, dir: "/p/x", files: {} });
  assert.equal(io.stderr(), "Cache hit: alpine-minimal@v1\n");
});

test("waiting, rebuilding, retrying and restarting each say so", () => {
  const io = captureIO({ cwd: "/p" });
  const render = renderImageEvents(io);
  render({ type: "lock-wait", image, pid: 4242 });
  render({ type: "rebuild", image, reason: "manifest.json is unreadable (not valid JSON)" });
  render({
    type: "download-retry",
    image,
    artifact: "kernel",
    attempt: 2,
    delayMs: 1000,
    reason: "ECONNRESET",
  });
  render({
    type: "download-restart",
    image,
    artifact: "kernel",
    reason: "the server ignored the Range request",
  });
  assert.equal(
    io.stderr(),
    [
      "Waiting for another castra (pid 4242) that is preparing alpine-minimal@v1",
      "Rebuilding alpine-minimal@v1: manifest.json is unreadable (not valid JSON)",
      "Retrying in 1.0 s (ECONNRESET)",
      "Cannot resume (the server ignored the Range request): downloading from the start",
      "",
    ].join("\n"),
  );
});

test("the download cache: a hit, a wait and warnings are one line each; adding to it is only logged", () => {
  const io = captureIO({ cwd: "/p" });
  const render = renderImageEvents(io);
  const blob = `/home/u/.cache/castra/downloads/sha256/${"ab".repeat(32)}`;
  render({ type: "store-wait", image, artifact: "root_disk", pid: 77 });
  render({
    type: "store-hit",
    image,
    artifact: "root_disk",
    path: blob,
    bytes: 122 * MIB,
    placement: "hardlink",
  });
  render({
    type: "store-damaged",
    image,
    artifact: "kernel",
    path: blob,
    problem: `its sha256 is ${"cd".repeat(32)}`,
  });
  render({ type: "store-add", image, artifact: "kernel", path: blob, placement: "copy" });
  render({
    type: "store-unusable",
    image,
    store: "/home/u/.cache/castra",
    reason: "EROFS: read-only file system, mkdir '/home/u/.cache/castra/downloads'",
  });
  assert.equal(
    io.stderr(),
    [
      "Waiting for another castra (pid 77) that is downloading the same root disk",
      "Found in the download cache: root disk (122 MiB)",
      `warning: the download cache's copy of the kernel is damaged (its sha256 is ${"cd".repeat(32)}): downloading it again`,
      "warning: the download cache /home/u/.cache/castra is not usable (EROFS: read-only file system, mkdir '/home/u/.cache/castra/downloads'): downloads go to the project only",
      "",
    ].join("\n"),
  );
});

test("on a TTY, a download draws a live bar with bytes, rate and ETA", async () => {
  const io = captureIO({ cwd: "/p", isTTY: true });
  const render = renderImageEvents(io);
  const [start, halfway] = pipeline;
  render(start as ImageEvent);
  await new Promise((resolve) => setTimeout(resolve, 300));
  render(halfway as ImageEvent);
  const out = io.stderr();
  assert.match(out, /Downloading root disk \(122 MiB\)/);
  assert.match(out, /root disk {2}█+░+ {2}80 MiB \/ 122 MiB {2}[\d.]+ [KMGT]iB\/s {2}ETA /);
});

test("durations read as seconds, then minutes", () => {
  assert.equal(formatSeconds(3.24), "3.2 s");
  assert.equal(formatSeconds(125), "2 min 05 s");
});
