// Durability property test (issue 6 item 5): random sequences over three files on two block
// devices — pwrite/writeTags, stores through shared and private mappings, ftruncate both ways,
// fsync, msync(MS_SYNC), memory pressure that forces reclaim and writeback, page-cache pages
// migrated between nodes (move_pages, migrate_pages, compaction), injected write and flush
// errors, and power failures at random points. The shadow keeps, per file, the size the last
// sync committed and, per page, every content it had since that page was last confirmed; after
// a power failure each file must have exactly the committed size and each page one of those
// contents (the confirmed one or a later one). machine.check() after every step.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  Machine, MmError, O_RDWR, O_CREAT, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MS_SYNC, PROT_READ, PROT_WRITE, PAGE_SIZE,
  type ContentMode, type OpenFile, type Process, type BlockDevice,
} from "../src/index.js";

const RW = PROT_READ | PROT_WRITE;
/** Pages each file may grow to (its mappings cover them all). */
const MAXP = 24;
/** Pages of each file's private mapping that stores may COW. */
const PRIV = 4;
const NFILES = 3;
const FRAMES_PER_NODE = 64;
const RUNS = Number(process.env.MMEMU_DURABILITY_RUNS ?? 25);

type Content = Uint8Array | bigint;

/** The shadow of one file. */
class Shadow {
  size = 0;
  confSize = 0;
  cur: Content[];
  /** Per page: every content since the page was last confirmed (the confirmed one first). */
  versions: Content[][];
  /** Private COW copies by page index. */
  cow = new Map<number, Content>();

  constructor(readonly bytes: boolean) {
    this.cur = Array.from({ length: MAXP }, () => this.zero());
    this.versions = this.cur.map((c) => [this.copy(c)]);
  }

  zero(): Content {
    return this.bytes ? new Uint8Array(PAGE_SIZE) : 0n;
  }
  copy(c: Content): Content {
    return typeof c === "bigint" ? c : c.slice();
  }
  record(i: number): void {
    this.versions[i]!.push(this.copy(this.cur[i]!));
  }
  get sizePages(): number {
    return Math.ceil(this.size / PAGE_SIZE);
  }
  /** A journal commit after writeback of [from, to) (fsync: all of it). */
  commit(from: number, to: number): void {
    this.confSize = this.size;
    const n = this.sizePages;
    for (let i = 0; i < MAXP; i++) {
      if (i >= n) this.versions[i] = [this.zero()];
      else if (i >= from && i < to) this.versions[i] = [this.copy(this.cur[i]!)];
    }
  }
  truncate(len: number): void {
    if (len < this.size) {
      const keep = Math.ceil(len / PAGE_SIZE);
      for (let i = keep; i < this.sizePages; i++) {
        this.cur[i] = this.zero();
        this.record(i);
      }
      for (const i of [...this.cow.keys()]) if (i >= keep) this.cow.delete(i);
      if (this.bytes && len % PAGE_SIZE !== 0) {
        (this.cur[keep - 1] as Uint8Array).fill(0, len % PAGE_SIZE);
        this.record(keep - 1);
      }
    }
    this.size = len;
  }
}

/** Whether `got` (the first `n` bytes of a page, or a tag) matches content `c`. */
function same(got: Content, c: Content, n: number): boolean {
  if (typeof got === "bigint" || typeof c === "bigint") return got === c;
  for (let k = 0; k < n; k++) if (got[k] !== c[k]) return false;
  return true;
}

function describeContent(c: Content, n: number): string {
  if (typeof c === "bigint") return `tag ${c}`;
  const nz = c.subarray(0, n).findIndex((b) => b !== 0);
  return nz < 0 ? "zeros" : `bytes from ${nz}: ${[...c.subarray(nz, nz + 8)].join(",")}`;
}

type Op = [kind: number, a: number, b: number, c: number];

const opArb: fc.Arbitrary<Op> = fc.tuple(fc.nat(99), fc.nat(1 << 20), fc.nat(1 << 20), fc.nat(1 << 20));

interface World {
  m: Machine;
  devs: BlockDevice[];
  files: OpenFile[];
  sh: Shadow[];
  p: Process;
  q: Process;
  shared: number[];
  priv: number[];
  bytes: boolean;
  stamp: number;
  /** What happened, for a failure's report. */
  log: string[];
  powerFails: number;
  confirmedChecked: number;
}

function setup(content: ContentMode): World {
  const m = Machine.create({ nodes: [{ normal: FRAMES_PER_NODE }, { normal: FRAMES_PER_NODE }], content });
  const devs = [m.addBlockDevice("vda", { sectors: 256 }), m.addBlockDevice("vdb", { sectors: 256 })];
  const fss = devs.map((d) => m.mount(d));
  const files = Array.from({ length: NFILES }, (_, k) => fss[k % 2]!.open(`f${k}`, O_RDWR | O_CREAT));
  const p = m.spawn();
  const q = m.spawn({ node: 1 });
  const shared = files.map((f) => p.mmap(0, MAXP * PAGE_SIZE, RW, MAP_SHARED, f, 0));
  const priv = files.map((f) => p.mmap(0, PRIV * PAGE_SIZE, RW, MAP_PRIVATE, f, 0));
  const bytes = content === "bytes";
  return {
    m, devs, files, sh: files.map(() => new Shadow(bytes)), p, q, shared, priv, bytes, stamp: 1, log: [], powerFails: 0, confirmedChecked: 0,
  };
}

/** Runs `f`; an MmError with one of `codes` means "did not happen" (null), anything else fails the test. */
function attempt<T>(w: World, what: string, codes: readonly string[], f: () => T): T | null {
  try {
    return f();
  } catch (e) {
    if (e instanceof MmError && codes.includes(e.code)) {
      w.log.push(`  ${what}: ${e.code}`);
      return null;
    }
    throw e;
  }
}

function pattern(n: number, stamp: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = ((stamp * 131 + k * 7) & 0xff) | 1;
  return out;
}

/** The file's page `i` as the file system reads it now: `n` bytes, or the tag. */
function readPage(w: World, k: number, i: number, n: number): Content {
  const f = w.files[k]!;
  return w.bytes ? f.pread(n, i * PAGE_SIZE) : f.readTags(i, 1)[0]!;
}

/** The whole file against the shadow's current content. */
function verifyFile(w: World, k: number): void {
  const s = w.sh[k]!;
  const f = w.files[k]!;
  expect(f.size, `f${k} size`).toBe(s.size);
  if (w.bytes) {
    const got = f.pread(s.size, 0);
    for (let i = 0; i < s.sizePages; i++) {
      const n = Math.min(PAGE_SIZE, s.size - i * PAGE_SIZE);
      const page = got.subarray(i * PAGE_SIZE, i * PAGE_SIZE + n);
      if (!same(page, s.cur[i]!, n)) expect.fail(`f${k} page ${i}: ${describeContent(page, n)}, shadow ${describeContent(s.cur[i]!, n)}\n${w.log.join("\n")}`);
    }
  } else {
    expect(f.readTags(0, s.sizePages), `f${k} tags`).toEqual(s.cur.slice(0, s.sizePages));
  }
}

/** After a power failure: the committed size, and each page a content it may have. */
function checkAfterPowerFail(w: World): void {
  w.sh.forEach((s, k) => {
    const f = w.files[k]!;
    if (f.size !== s.confSize) expect.fail(`f${k}: size ${f.size} after the power failure, ${s.confSize} was committed\n${w.log.join("\n")}`);
    s.size = s.confSize;
    for (let i = 0; i < MAXP; i++) {
      if (i >= s.sizePages) {
        s.cur[i] = s.zero();
      } else {
        const n = Math.min(PAGE_SIZE, s.size - i * PAGE_SIZE);
        const got = readPage(w, k, i, n);
        if (!s.versions[i]!.some((c) => same(got, c, n)))
          expect.fail(`f${k} page ${i} after a power failure: ${describeContent(got, n)}; allowed: ${s.versions[i]!.map((c) => describeContent(c, n)).join(" | ")}\n${w.log.join("\n")}`);
        w.confirmedChecked++;
        if (typeof got === "bigint") s.cur[i] = got;
        else {
          const page = new Uint8Array(PAGE_SIZE);
          page.set(got);
          s.cur[i] = page;
        }
      }
      s.versions[i] = [s.copy(s.cur[i]!)];
    }
    s.cow.clear();
  });
}

function step(w: World, [kind, a, b, c]: Op): void {
  const { m, p, bytes } = w;
  const k = a % NFILES;
  const s = w.sh[k]!;
  const f = w.files[k]!;
  const stamp = w.stamp++;
  if (kind < 16) {
    // pwrite / writeTags, possibly growing the file.
    if (bytes) {
      const off = b % (MAXP * PAGE_SIZE - 1);
      const len = 1 + (c % Math.min(6000, MAXP * PAGE_SIZE - off));
      const data = pattern(len, stamp);
      w.log.push(`pwrite f${k} ${off}+${len}`);
      const done = attempt(w, "pwrite", ["ENOMEM"], () => f.pwrite(data, off)) ?? 0;
      for (let pos = off; pos < off + done; ) {
        const i = Math.floor(pos / PAGE_SIZE);
        const at = pos - i * PAGE_SIZE;
        const n = Math.min(PAGE_SIZE - at, off + done - pos);
        (s.cur[i] as Uint8Array).set(data.subarray(pos - off, pos - off + n), at);
        s.record(i);
        pos += n;
      }
      if (done > 0) s.size = Math.max(s.size, off + done);
    } else {
      const i = b % MAXP;
      const n = 1 + (c % Math.min(3, MAXP - i));
      const tags = Array.from({ length: n }, (_, j) => BigInt(stamp) * 8n + BigInt(j) + 1n);
      w.log.push(`writeTags f${k} ${i}+${n}`);
      if (attempt(w, "writeTags", ["ENOMEM"], () => f.writeTags(i, tags)) === null) return;
      tags.forEach((t, j) => {
        s.cur[i + j] = t;
        s.record(i + j);
      });
      s.size = Math.max(s.size, (i + n) * PAGE_SIZE);
    }
  } else if (kind < 34) {
    // A store through the shared mapping (inside i_size), or a private one (a COW copy).
    if (s.size === 0) return;
    const priv = kind >= 28;
    const pages = priv ? Math.min(PRIV, s.sizePages) : s.sizePages;
    const i = b % pages;
    const room = Math.min(PAGE_SIZE, s.size - i * PAGE_SIZE);
    if (room < 4) return;
    const at = bytes ? (c % Math.floor(room / 4)) * 4 : 0;
    const addr = (priv ? w.priv[k]! : w.shared[k]!) + i * PAGE_SIZE + at;
    const value = (stamp * 2654435761) >>> 0 || 1;
    const tag = BigInt(stamp) * 8n + 7n;
    w.log.push(`${priv ? "private" : "shared"} store f${k} page ${i} +${at}`);
    if (attempt(w, "store", ["SIGBUS", "ENOMEM"], () => (bytes ? p.writeU32(addr, value) : p.writeTag(addr, tag))) === null) return;
    let page: Content = priv ? (s.cow.get(i) ?? s.copy(s.cur[i]!)) : s.cur[i]!;
    if (typeof page === "bigint") page = tag;
    else new DataView(page.buffer).setUint32(at, value, true);
    if (priv) s.cow.set(i, page);
    else {
      s.cur[i] = page;
      s.record(i);
    }
  } else if (kind < 42) {
    // ftruncate to anywhere in [0, MAXP pages].
    const len = bytes ? b % (MAXP * PAGE_SIZE + 1) : (b % (MAXP + 1)) * PAGE_SIZE - (c % 2) * (b % 97);
    const l = Math.max(0, len);
    w.log.push(`ftruncate f${k} ${l}`);
    if (attempt(w, "ftruncate", ["ENOMEM"], () => f.ftruncate(l)) === null) return;
    s.truncate(l);
  } else if (kind < 52) {
    w.log.push(`fsync f${k}`);
    if (attempt(w, "fsync", ["EIO", "ENOSPC"], () => f.fsync()) === null) return;
    s.commit(0, MAXP);
  } else if (kind < 58) {
    // msync(MS_SYNC) of part of the shared mapping.
    const from = b % MAXP;
    const n = 1 + (c % (MAXP - from));
    w.log.push(`msync f${k} ${from}+${n}`);
    if (attempt(w, "msync", ["EIO", "ENOSPC"], () => p.msync(w.shared[k]! + from * PAGE_SIZE, n * PAGE_SIZE, MS_SYNC)) === null) return;
    s.commit(from, from + n);
  } else if (kind < 66) {
    // Memory pressure: another process takes most of memory for a moment.
    const n = FRAMES_PER_NODE + (b % FRAMES_PER_NODE);
    w.log.push(`pressure ${n}`);
    const addr = w.q.mmap(0, n * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    attempt(w, "pressure", ["SIGBUS", "ENOMEM"], () => w.q.touch(addr, n, true, 1n));
    w.q.munmap(addr, n * PAGE_SIZE);
  } else if (kind < 76) {
    // Page-cache pages (and private copies) between nodes.
    const how = b % 3;
    if (how === 0) {
      const addrs: number[] = [];
      const nodes: number[] = [];
      for (let j = 0; j < 1 + (c % 6); j++) {
        const kk = (a + j) % NFILES;
        const pages = w.sh[kk]!.sizePages;
        if (pages === 0) continue;
        const i = (c + j * 5) % pages;
        const addr = (j % 3 === 2 && i < PRIV ? w.priv[kk]! : w.shared[kk]!) + i * PAGE_SIZE;
        // Faulted in first (a read), so that there is a page to move.
        attempt(w, "read", ["SIGBUS", "ENOMEM"], () => (bytes ? p.readU32(addr) : p.readTag(addr)));
        addrs.push(addr);
        nodes.push((c >> j) & 1);
      }
      w.log.push(`move_pages ${addrs.length}`);
      attempt(w, "move_pages", ["ENOMEM"], () => m.movePages(p, addrs, nodes, 0));
    } else if (how === 1) {
      const from = c & 1;
      w.log.push(`migrate_pages ${from}->${1 - from}`);
      // The other node may be full: ENOMEM, with what moved so far moved.
      attempt(w, "migrate_pages", ["ENOMEM"], () => m.migratePages(p, [from], [1 - from]));
    } else {
      w.log.push(`compact_memory`);
      m.compactMemory();
    }
  } else if (kind < 80) {
    // An injected error on one device: the next write(s) or flush fail.
    const dev = w.devs[b % 2]!;
    const op = c % 3 === 0 ? "flush" : "write";
    const times = 1 + (c % 2);
    w.log.push(`inject ${op} x${times} on ${dev.name}`);
    dev.injectError({ op, times });
  } else if (kind < 86) {
    w.log.push(`power failure`);
    m.powerFail();
    w.powerFails++;
    m.check();
    checkAfterPowerFail(w);
  } else if (kind < 94) {
    w.log.push(`verify f${k}`);
    verifyFile(w, k);
    // The private mapping sees its copy, or the file.
    const pages = Math.min(PRIV, s.sizePages);
    if (pages > 0) {
      const i = b % pages;
      const want = s.cow.get(i) ?? s.cur[i]!;
      const got = bytes ? p.readU32(w.priv[k]! + i * PAGE_SIZE) : p.readTag(w.priv[k]! + i * PAGE_SIZE);
      const exp = typeof want === "bigint" ? want : new DataView(want.buffer).getUint32(0, true);
      if (got !== exp) expect.fail(`private f${k} page ${i}: ${got}, shadow ${exp}\n${w.log.join("\n")}`);
    }
  } else {
    // A clean moment: errors cleared, everything synced.
    w.log.push(`clear errors, fsync all`);
    for (const d of w.devs) d.clearErrors();
    w.files.forEach((g, j) => {
      if (attempt(w, "fsync", ["EIO"], () => g.fsync()) !== null) w.sh[j]!.commit(0, MAXP);
    });
  }
}

function run(content: ContentMode, ops: Op[]): World {
  const w = setup(content);
  for (const op of ops) {
    step(w, op);
    w.m.check();
  }
  // The end: a last power failure after a clean sync loses nothing at all.
  for (const d of w.devs) d.clearErrors();
  w.files.forEach((f, k) => {
    // An error writeback met earlier is reported once (errseq); the retry writes the kept pages.
    if (attempt(w, "fsync", ["EIO"], () => f.fsync()) === null) f.fsync();
    w.sh[k]!.commit(0, MAXP);
  });
  w.m.powerFail();
  w.m.check();
  checkAfterPowerFail(w);
  w.sh.forEach((_, k) => verifyFile(w, k));
  return w;
}

describe.each(["bytes", "tags"] as const)("durability across power failures (%s)", (content) => {
  it("nothing a sync confirmed is lost; every page holds its confirmed content or a later one", () => {
    let powerFails = 0;
    let checked = 0;
    const seen = { pgsteal_file: 0, nr_written: 0, pgmigrate_success: 0, errors: 0 };
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 160 }), (ops) => {
        const w = run(content, ops);
        powerFails += w.powerFails;
        checked += w.confirmedChecked;
        const c = w.m.counters();
        seen.pgsteal_file += c.pgsteal_file;
        seen.nr_written += c.nr_written;
        seen.pgmigrate_success += c.pgmigrate_success;
        seen.errors += w.devs.reduce((n, d) => n + d.stats.errors, 0);
      }),
      { numRuns: RUNS, seed: Number(process.env.MMEMU_DURABILITY_SEED ?? 0x6d6d6575) },
    );
    // The runs did reach the interesting states.
    expect(powerFails).toBeGreaterThan(RUNS);
    expect(checked).toBeGreaterThan(RUNS * 10);
    // Reclaim took clean file pages, writeback ran, file pages migrated, injected errors hit.
    for (const [name, n] of Object.entries(seen)) expect(n, name).toBeGreaterThan(0);
    if (process.env.MMEMU_DURABILITY_RUNS) console.log(content, { powerFails, checked, ...seen });
  });
});
