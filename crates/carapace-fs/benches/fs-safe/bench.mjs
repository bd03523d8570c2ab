// Side-by-side benchmark of @openclaw/fs-safe (native binding required) doing the same
// operations as crates/carapace-fs/benches/fs_ops.rs on the same file layout:
//   <dir>/bench/f4k (4 KiB), <dir>/bench/f1m (1 MiB), <dir>/bench/w4k (replaced), new files for create.
// Usage: FS_SAFE_NATIVE_MODE=require node bench.mjs <dir>   (Node 24; see scripts/bench-fs.sh)
// Prints one JSON object: { op: nanoseconds_per_op, ... }, plus the mechanism fs-safe reported.
import { root, configureFsSafeNative } from "@openclaw/fs-safe";
import * as fs from "node:fs";
import * as path from "node:path";

configureFsSafeNative({ mode: "require" });
const dir = process.argv[2];
fs.mkdirSync(path.join(dir, "bench"), { recursive: true });
fs.writeFileSync(path.join(dir, "bench/f4k"), Buffer.alloc(4096, "x"));
fs.writeFileSync(path.join(dir, "bench/f1m"), Buffer.alloc(1 << 20, "y"));
fs.writeFileSync(path.join(dir, "bench/w4k"), Buffer.alloc(4096, "z"));

const r = await root(dir);
const data = Buffer.alloc(4096, "r");

async function time(name, iters, fn) {
  for (let i = 0; i < Math.min(200, iters); i++) await fn(i); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) await fn(i);
  const ns = Number(process.hrtime.bigint() - start) / iters;
  return [name, ns];
}

const results = {};
let createRound = 0;
let createSeq = 0;
for (const [name, iters, fn] of [
  ["read_4k", 20000, () => r.readBytes("bench/f4k")],
  ["read_1m", 2000, () => r.readBytes("bench/f1m")],
  ["stat", 20000, () => r.stat("bench/f4k")],
  ["replace_4k", 3000, () => r.write("bench/w4k", data, { durable: false })],
  ["replace_4k_durable", 200, () => r.write("bench/w4k", data, { durable: true })],
  ["create_4k", 3000, () => r.create(`c-${createRound}/f${createSeq++}`, data)],
]) {
  if (name === "create_4k") {
    createRound++;
    fs.mkdirSync(path.join(dir, `c-${createRound}`));
  }
  const [n, ns] = await time(name, iters, fn);
  results[n] = ns;
}
// Plain Node (no containment) for reference: how much of the cost is Node itself.
for (const [name, iters, fn] of [
  ["node_read_4k", 20000, () => fs.promises.readFile(path.join(dir, "bench/f4k"))],
  ["node_stat", 20000, () => fs.promises.lstat(path.join(dir, "bench/f4k"))],
  ["node_replace_4k", 3000, () => fs.promises.writeFile(path.join(dir, "bench/w4k"), data)],
]) {
  const [n, ns] = await time(name, iters, fn);
  results[n] = ns;
}
const opened = await r.open("bench/f4k");
results.mechanism = opened.containment ?? opened.mechanism ?? Object.keys(opened).join(",");
await opened.handle?.close?.();
console.log(JSON.stringify(results));
