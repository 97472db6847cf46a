// file-writeback: a GPU-like device works on a file mapped MAP_SHARED whose pages its driver
// moved into device-private memory (MIGRATE_VMA_SELECT_FILE, ours): the device stores into them
// and reports what it wrote (fileDeviceDirty), the CPU reads and writes the file with
// read(2)/write(2) and through the mapping, fsync writes the device-dirtied pages back, and a
// power failure comes at the end of each round. Round by round the same workload (drawn from
// the seed) runs once per writeback policy: "migrate-back" (pages go home to RAM first) and
// "bounce" (a temporary system page carries each page to the block device). After each
// power failure every page is read back against what the last fsync confirmed. The file's
// accesses are not ops of the stream (nothing to record); they are counted as they run, a
// fixed number per round: per policy and device kernel a migration, a kernel launch, a
// write(2) and a read(2), then one read-back per page. A bystander region of anonymous memory
// takes the ops left over when no whole round fits.
import { Rng } from "../../random.js";
import { PAGE_SIZE } from "../../constants.js";
import { MIGRATE_VMA_SELECT_FILE, MIGRATE_VMA_SELECT_SYSTEM } from "../../migrate.js";
import { MAX_MIGRATE } from "../../layout.js";
import { MAP_SHARED, PROT_READ, PROT_WRITE } from "../../constants.js";
import { O_CREAT, O_RDWR } from "../../fs/constants.js";
import type { FileSystem } from "../../fs/filesystem.js";
import type { Process } from "../../process.js";
import { StressFailure, type World } from "../world.js";
import type { Gpu } from "../gpu.js";
import { OP_CPU_READ, OP_CPU_WRITE, OP_DEV_WRITE, OP_MIGRATE_TO_DEV } from "../ops.js";
import { FILE_WB_POLICIES, emptyPolicy, type FileWbPolicy, type FileWritebackReport } from "../filewb.js";
import { deviceOf, spawnWithRegion, type Emitter, type Generator, type Scenario } from "./common.js";
import type { Region } from "../world.js";

/** File pages per round at most (and at most a quarter of the device's memory). */
const MAX_FILE_PAGES = 512;
const BYSTANDER_PAGES = 64;
/** Device kernels per round; each writes a random range of the device-resident pages. */
const KERNELS = 8;
const FSYNC_EVERY = 3;

export const fileWriteback: Scenario = {
  name: "file-writeback",
  summary: "a device dirties file pages in its memory; writeback by migrating them back vs through bounce pages; power failures",
  needs: ["private"],
  scheduled: true,
  create(w: World, rng: Rng): Generator {
    return new FileWriteback(w, rng.int(2 ** 31));
  },
};

class FileWriteback implements Generator {
  private fs: FileSystem | null = null;
  private proc: Process | null = null;
  private gpu!: Gpu;
  private pages = 0;
  private round = 0;
  private bystander: Region | null = null;
  private readonly rng: Rng;
  private readonly policies = FILE_WB_POLICIES.map(emptyPolicy);

  constructor(private readonly world: World, private readonly seed: number) {
    this.rng = new Rng(seed ^ 0x5bd1e995);
  }

  /** Ops of one round: both policies. */
  private get roundOps(): number {
    return FILE_WB_POLICIES.length * (4 * KERNELS + this.pages);
  }

  step(e: Emitter): void {
    if (!this.bystander) {
      this.bystander = spawnWithRegion(e, BYSTANDER_PAGES);
      if (!this.bystander) return e.skip();
    }
    if (!this.fs) {
      const dev = deviceOf(this.world, "private");
      this.gpu = this.world.gpus[dev]!;
      this.pages = Math.min(MAX_FILE_PAGES, Math.floor(this.gpu.pages / 4));
      const m = this.world.machine;
      this.fs = m.mount(m.addBlockDevice("fwb0", { sectors: 4 * this.pages + 64 }));
      this.proc = m.spawn();
    }
    if (e.left < this.roundOps) {
      // No whole round fits: the bystander's CPU accesses take the rest.
      const r = this.bystander;
      while (e.left > 0) e.op(this.rng.int(2) === 0 ? OP_CPU_WRITE : OP_CPU_READ, r.slot, this.rng.int(r.pages));
      return;
    }
    const roundSeed = new Rng(this.seed + this.round * 0x9e3779b9).int(2 ** 31);
    FILE_WB_POLICIES.forEach((_, i) => this.runPolicy(i, roundSeed));
    this.round++;
  }

  fileWriteback(): FileWritebackReport | undefined {
    if (this.round === 0) return undefined;
    return { rounds: this.round, filePages: this.pages, policies: this.policies.map((p) => ({ ...p })) };
  }

  private runPolicy(i: number, seed: number): void {
    const w = this.world;
    const m = w.machine;
    const fs = this.fs!;
    const p = this.proc!;
    const st: FileWbPolicy = this.policies[i]!;
    const rng = new Rng(seed);
    const n = this.pages;
    fs.devicePageWriteback = st.policy;
    const before = { written: m.counter("nr_written"), bounces: m.counter("nr_bounce"), back: fs.deviceStats.migratedBack };
    const f = fs.open(`data-${st.policy}`, O_RDWR | O_CREAT);
    let content: bigint[] = Array.from({ length: n }, (_, k) => BigInt(seed) * 4096n + BigInt(k) + 1n);
    f.writeTags(0, content);
    f.fsync();
    st.fsyncs++;
    let durable = content.slice();
    const addr = p.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    p.touch(addr, n, false);
    let tag = BigInt(seed) << 20n;
    for (let k = 0; k < KERNELS; k++) {
      // The driver moves a range of the file into device memory (what is there already stays).
      const len = 1 + rng.int(Math.min(MAX_MIGRATE, n));
      const at = rng.int(n - len + 1);
      const mig = m.migrateVmaSetup({ proc: p, start: addr + at * PAGE_SIZE, end: addr + (at + len) * PAGE_SIZE, flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_FILE, pgmapOwner: this.gpu });
      const moved = mig.cpages > 0 ? mig.allocAndCopy(this.gpu.pgmap) : 0;
      mig.finalize();
      st.migratedToDevice += moved;
      w.tally(OP_MIGRATE_TO_DEV);
      // The kernel stores into part of the range; the driver reports what the device wrote.
      const dirtied: number[] = [];
      for (let j = at; j < at + len; j++) {
        if (rng.int(2) === 0) continue;
        const pfn = m.core.filemapLookup(f.inode.id, j);
        if (!this.gpu.pgmap.contains(pfn)) continue;
        tag++;
        m.page.writeTag(pfn, tag);
        content[j] = tag;
        dirtied.push(pfn);
        st.deviceWrites++;
      }
      w.tally(OP_DEV_WRITE);
      if (dirtied.length) m.fileDeviceDirty(dirtied);
      // The CPU: a write(2), a read(2) checked against the shadow, a store through the mapping.
      const j = rng.int(n);
      tag++;
      f.writeTags(j, [tag]);
      content[j] = tag;
      st.cpuWrites++;
      w.tally(OP_CPU_WRITE);
      const r = rng.int(n);
      const got = f.readTags(r, 1)[0];
      st.cpuReads++;
      w.tally(OP_CPU_READ);
      if (got !== content[r]) throw new StressFailure("data", w.ops, `file-writeback (${st.policy}): page ${r} read ${got} by read(2), expected ${content[r]}`);
      if (k % FSYNC_EVERY === FSYNC_EVERY - 1) {
        f.fsync();
        st.fsyncs++;
        durable = content.slice();
      }
    }
    // Device writes after the last fsync may be lost; what fsync confirmed may not.
    m.powerFail();
    st.powerFailures++;
    content = durable;
    const back = f.readTags(0, n);
    for (let j = 0; j < n; j++) {
      st.pagesVerified++;
      if (back[j] !== content[j]) st.bytesLost += PAGE_SIZE;
      w.tally(OP_CPU_READ);
    }
    const lost = back.findIndex((t, j) => t !== content[j]);
    if (lost >= 0) throw new StressFailure("data", w.ops, `file-writeback (${st.policy}): after a power failure page ${lost} reads ${back[lost]}, but fsync had confirmed ${content[lost]}`);
    st.pagesWritten += m.counter("nr_written") - before.written;
    st.bounces += m.counter("nr_bounce") - before.bounces;
    st.migratedBack += fs.deviceStats.migratedBack - before.back;
    p.munmap(addr, n * PAGE_SIZE);
    f.ftruncate(0);
    f.close();
  }
}
