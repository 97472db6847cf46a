// The pmem report: the same workload on a pmem device used as storage (a DAX mapping plus
// block writes) and as RAM (onlined as ZONE_MOVABLE, anonymous memory, offlined at the end
// of each round). Per mode: ops, pages that lived on pmem, media wear per sector, struct
// page overhead, offline outcomes, what was verified. Runs of several seeds merge by adding.

export const PMEM_MODES = ["storage", "ram"] as const;
export type PmemModeName = (typeof PMEM_MODES)[number];

export interface PmemModeReport {
  mode: PmemModeName;
  /** Ops of the mode's phases (accesses, block requests, read-backs). */
  ops: number;
  /** Working-set pages found on the pmem range, summed over rounds (DAX: all of them). */
  pagesOnPmem: number;
  /** Working-set pages in all, summed over rounds. */
  workingPages: number;
  /** Writes that reached the media in this mode: the most-written sector, and all sectors together. */
  maxSectorWrites: number;
  sectorWrites: number;
  /** Block requests (storage mode). */
  blockWrites: number;
  blockReads: number;
  /** struct page bytes the device held in this mode: ours, and the kernel's 64 B per page. */
  structPageBytes: number;
  kernelStructPageBytes: number;
  offlineAttempts: number;
  offlineSuccesses: number;
  /** Pages offline migrated off the device. */
  offlineMigrated: number;
  /** Pages and sectors read back against the last write. */
  pagesVerified: number;
}

export interface PmemReport {
  rounds: number;
  /** The device's size (sectors = pages), the working set and its hot part per round. */
  pmemPages: number;
  workingSetPages: number;
  hotPages: number;
  modes: PmemModeReport[];
  /** Bytes found different from the last write (a run that finds any fails). */
  lostBytes: number;
}

export function emptyPmemMode(mode: PmemModeName): PmemModeReport {
  return {
    mode, ops: 0, pagesOnPmem: 0, workingPages: 0, maxSectorWrites: 0, sectorWrites: 0, blockWrites: 0, blockReads: 0,
    structPageBytes: 0, kernelStructPageBytes: 0, offlineAttempts: 0, offlineSuccesses: 0, offlineMigrated: 0, pagesVerified: 0,
  };
}

export const PMEM_SUM_FIELDS = [
  "ops", "pagesOnPmem", "workingPages", "sectorWrites", "blockWrites", "blockReads", "offlineAttempts", "offlineSuccesses", "offlineMigrated", "pagesVerified",
] as const;

/** The pmem figures of several runs together (null when none has any). */
export function mergePmem(reports: (PmemReport | undefined)[]): PmemReport | null {
  const have = reports.filter((r): r is PmemReport => r !== undefined);
  if (have.length === 0) return null;
  const out: PmemReport = { ...have[0]!, rounds: 0, lostBytes: 0, modes: PMEM_MODES.map(emptyPmemMode) };
  for (const r of have) {
    out.rounds += r.rounds;
    out.lostBytes += r.lostBytes;
    r.modes.forEach((m, i) => {
      const o = out.modes[i]!;
      for (const k of PMEM_SUM_FIELDS) o[k] += m[k];
      o.maxSectorWrites = Math.max(o.maxSectorWrites, m.maxSectorWrites);
      o.structPageBytes = Math.max(o.structPageBytes, m.structPageBytes);
      o.kernelStructPageBytes = Math.max(o.kernelStructPageBytes, m.kernelStructPageBytes);
    });
  }
  return out;
}

const fmtN = (n: number): string => n.toLocaleString("en-US");
export const PMEM_HEAD = ["mode", "ops", "pages on pmem", "sector writes max / mean", "struct pages (ours / kernel)", "offline", "offline migrated", "verified"];

/** Mean writes per sector of the device over the rounds. */
function meanWear(p: PmemReport, m: PmemModeReport): string {
  return (m.sectorWrites / Math.max(1, p.pmemPages * Math.max(1, p.rounds))).toFixed(2);
}

export function pmemRows(p: PmemReport): string[][] {
  return p.modes.map((m) => [
    m.mode, fmtN(m.ops), `${fmtN(m.pagesOnPmem)}/${fmtN(m.workingPages)}`, `${fmtN(m.maxSectorWrites)} / ${meanWear(p, m)}`,
    `${fmtN(m.structPageBytes)} / ${fmtN(m.kernelStructPageBytes)} B`, m.mode === "ram" ? `${fmtN(m.offlineSuccesses)}/${fmtN(m.offlineAttempts)}` : "-",
    fmtN(m.offlineMigrated), fmtN(m.pagesVerified),
  ]);
}

export function pmemNote(p: PmemReport): string {
  return `${p.rounds} round${p.rounds === 1 ? "" : "s"} of the same workload per mode on a ${fmtN(p.pmemPages)}-page device; working set ${fmtN(p.workingSetPages)} pages, hot set ${fmtN(p.hotPages)}; sector writes per round: the most-written sector and the mean over all sectors; struct page bytes while the mode holds the device`;
}

/** The terminal lines of the pmem section; `clean`: no run failed. */
export function formatPmem(p: PmemReport, clean: boolean): string[] {
  const out = ["", "pmem as storage (DAX + block writes) vs as RAM (ZONE_MOVABLE, offlined each round)", `  (${pmemNote(p)})`];
  const w = [8, 10, 16, 24, 28, 8, 16, 10];
  out.push(`  ${PMEM_HEAD.map((h, i) => (i === 0 ? h.padEnd(w[i]!) : h.padStart(w[i]!))).join(" ")}`);
  for (const r of pmemRows(p)) out.push(`  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(" ")}`);
  const s = p.modes[0]!;
  if (s.blockWrites + s.blockReads > 0) out.push(`  storage block requests: ${fmtN(s.blockWrites)} writes, ${fmtN(s.blockReads)} reads`);
  if (clean) out.push(`  lost bytes: ${fmtN(p.lostBytes)} (every page and sector read back against the last write after each phase)`);
  return out;
}
