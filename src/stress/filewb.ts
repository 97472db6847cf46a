// The file-writeback report: per writeback policy of device-resident file pages ("migrate-back",
// "bounce"), what the same workload did: device writes, pages written back, bounce pages, pages
// migrated back to RAM, and the bytes a power failure lost of what fsync had confirmed (must be 0).
export const FILE_WB_POLICIES = ["migrate-back", "bounce"] as const;
export type FileWbPolicyName = (typeof FILE_WB_POLICIES)[number];

export interface FileWbPolicy {
  policy: FileWbPolicyName;
  /** Pages the drivers moved into device memory. */
  migratedToDevice: number;
  /** Device stores to file pages in its memory (each reported with fileDeviceDirty). */
  deviceWrites: number;
  /** write(2)s and read(2)s of file pages (device-resident ones go through the policy). */
  cpuWrites: number;
  cpuReads: number;
  /** Pages writeback wrote (nr_written), bounce pages used (nr_bounce), pages migrated back for I/O. */
  pagesWritten: number;
  bounces: number;
  migratedBack: number;
  fsyncs: number;
  powerFailures: number;
  /** Pages read back after each power failure against what the last fsync confirmed. */
  pagesVerified: number;
  bytesLost: number;
}

export interface FileWritebackReport {
  rounds: number;
  /** Pages of the file each round works on. */
  filePages: number;
  policies: FileWbPolicy[];
}

export function emptyPolicy(policy: FileWbPolicyName): FileWbPolicy {
  return { policy, migratedToDevice: 0, deviceWrites: 0, cpuWrites: 0, cpuReads: 0, pagesWritten: 0, bounces: 0, migratedBack: 0, fsyncs: 0, powerFailures: 0, pagesVerified: 0, bytesLost: 0 };
}

export const FILE_WB_FIELDS = ["migratedToDevice", "deviceWrites", "cpuWrites", "cpuReads", "pagesWritten", "bounces", "migratedBack", "fsyncs", "powerFailures", "pagesVerified", "bytesLost"] as const;

/** The file-writeback figures of several runs together (null when none has any). */
export function mergeFileWriteback(reports: (FileWritebackReport | undefined)[]): FileWritebackReport | null {
  const have = reports.filter((r): r is FileWritebackReport => r !== undefined);
  if (have.length === 0) return null;
  const out: FileWritebackReport = { rounds: 0, filePages: have[0]!.filePages, policies: FILE_WB_POLICIES.map(emptyPolicy) };
  for (const r of have) {
    out.rounds += r.rounds;
    r.policies.forEach((p, i) => {
      for (const k of FILE_WB_FIELDS) out.policies[i]![k] += p[k];
    });
  }
  return out;
}

const fmtN = (n: number): string => n.toLocaleString("en-US");
export const FILE_WB_HEAD = ["policy", "to device", "device writes", "CPU writes", "CPU reads", "pages written", "bounces", "migrated back", "fsyncs", "power failures", "pages verified", "bytes lost"];

export function fileWritebackRows(r: FileWritebackReport): string[][] {
  return r.policies.map((p) => [p.policy, ...FILE_WB_FIELDS.map((k) => fmtN(p[k]))]);
}

export function fileWritebackNote(r: FileWritebackReport): string {
  return `${r.rounds} round${r.rounds === 1 ? "" : "s"} of the same workload per policy on a file of ${fmtN(r.filePages)} pages in device-private memory`;
}

/** The terminal lines of the file-writeback section. */
export function formatFileWriteback(r: FileWritebackReport, clean: boolean): string[] {
  const out = ["", "writeback of device-dirtied file pages: migrate back to RAM vs bounce pages", `  (${fileWritebackNote(r)})`];
  const w = [12, 10, 9, 9, 10, 8, 9, 7, 9, 9];
  const head = ["policy", "to dev", "dev wr", "written", "bounces", "mig back", "fsyncs", "pwr fail", "verified", "lost B"];
  out.push(`  ${head.map((h, i) => (i === 0 ? h.padEnd(w[i]!) : h.padStart(w[i]!))).join(" ")}`);
  for (const p of r.policies) {
    const cells = [p.policy, p.migratedToDevice, p.deviceWrites, p.pagesWritten, p.bounces, p.migratedBack, p.fsyncs, p.powerFailures, p.pagesVerified, p.bytesLost];
    out.push(`  ${cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]!) : fmtN(c as number).padStart(w[i]!))).join(" ")}`);
  }
  if (clean) out.push(`  bytes lost: ${fmtN(r.policies.reduce((s, p) => s + p.bytesLost, 0))} (every page read back after each power failure against the last fsync)`);
  return out;
}
