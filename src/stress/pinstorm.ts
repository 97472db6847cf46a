// The pin-storm report: per holder mode (plain FOLL_GET references, FOLL_PIN|FOLL_LONGTERM
// pins, the pin control subsystem of seed 003), how the kernel's users of page migration
// fared against the holds: compaction, CMA allocation, memory offline of ZONE_MOVABLE and
// ZONE_NORMAL; what could not move and why; and what the holders verified. Runs of several
// seeds merge by adding.

export const PIN_STORM_MODES = ["get", "longterm", "pinpage"] as const;
export type PinStormModeName = (typeof PIN_STORM_MODES)[number];

/** The kernel's operations of a round, in the order they run. */
export const PIN_STORM_OPS = ["compactMovable", "compactNormal", "cma", "offlineMovable", "offlineNormal"] as const;
export type PinStormOpName = (typeof PIN_STORM_OPS)[number];

export interface PinStormOutcome {
  attempts: number;
  successes: number;
  /** Pages the operation migrated (also when it failed in the end). */
  migrated: number;
}

export interface PinStormMode {
  mode: PinStormModeName;
  /** Hold calls the holders made, and the pages they held, over all rounds. */
  holds: number;
  heldPages: number;
  /** Pages FOLL_LONGTERM moved out of ZONE_MOVABLE and CMA before pinning them. */
  longtermMigrated: number;
  /** Compaction of ZONE_MOVABLE and of ZONE_NORMAL: a success when it reached its order. */
  compactMovable: PinStormOutcome;
  compactNormal: PinStormOutcome;
  cma: PinStormOutcome;
  offlineMovable: PinStormOutcome;
  offlineNormal: PinStormOutcome;
  /** Pages the kernel side migrated in all (pgmigrate_success over its operations). */
  pagesMigrated: number;
  /** Pages that could not move, by reason, summed over the operations that met them. */
  stuck: Record<string, number>;
  /** Pin control callbacks that moved a holder to the new page. */
  holderMoves: number;
  /** Holder table entries checked (pfn still the mapped page, contents equal to the shadow). */
  holderPagesVerified: number;
  /** Pages of the processes read back against the shadow at the end of each round. */
  pagesVerified: number;
}

export interface PinStormReport {
  rounds: number;
  holders: number;
  /** Pages the working process maps per round, and each holder holds. */
  regionPages: number;
  heldPerHolder: number;
  compactOrder: number;
  cmaPages: number;
  /** get, longterm, pinpage. */
  modes: PinStormMode[];
  /** Bytes a holder or a process found different from the last write (a run that finds any fails). */
  lostBytes: number;
}

export function emptyMode(mode: PinStormModeName): PinStormMode {
  const outcome = (): PinStormOutcome => ({ attempts: 0, successes: 0, migrated: 0 });
  return {
    mode, holds: 0, heldPages: 0, longtermMigrated: 0,
    compactMovable: outcome(), compactNormal: outcome(), cma: outcome(), offlineMovable: outcome(), offlineNormal: outcome(),
    pagesMigrated: 0, stuck: {}, holderMoves: 0, holderPagesVerified: 0, pagesVerified: 0,
  };
}

/** Adds `from` into `into` (same mode). */
export function addMode(into: PinStormMode, from: PinStormMode): void {
  for (const k of ["holds", "heldPages", "longtermMigrated", "pagesMigrated", "holderMoves", "holderPagesVerified", "pagesVerified"] as const) into[k] += from[k];
  for (const op of PIN_STORM_OPS) {
    into[op].attempts += from[op].attempts;
    into[op].successes += from[op].successes;
    into[op].migrated += from[op].migrated;
  }
  for (const [k, v] of Object.entries(from.stuck)) into.stuck[k] = (into.stuck[k] ?? 0) + v;
}

/** The pin-storm figures of several runs together (null when none has any). */
export function mergePinStorm(reports: (PinStormReport | undefined)[]): PinStormReport | null {
  const have = reports.filter((r): r is PinStormReport => r !== undefined);
  if (have.length === 0) return null;
  const first = have[0]!;
  const out: PinStormReport = { ...first, rounds: 0, lostBytes: 0, modes: PIN_STORM_MODES.map(emptyMode) };
  for (const r of have) {
    out.rounds += r.rounds;
    out.lostBytes += r.lostBytes;
    r.modes.forEach((m, i) => addMode(out.modes[i]!, m));
  }
  return out;
}

const fmtN = (n: number): string => n.toLocaleString("en-US");
export const PIN_STORM_HEAD = ["mode", "compact movable", "compact normal", "CMA alloc", "offline movable", "offline normal", "migrated", "could not move", "holder moves", "holder pages verified"];

const ratio = (o: PinStormOutcome): string => `${fmtN(o.successes)}/${fmtN(o.attempts)}`;
const stuckText = (m: PinStormMode): string => {
  const parts = Object.entries(m.stuck).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${fmtN(v)} ${k}`);
  return parts.length ? parts.join(", ") : "0";
};

/** Rows of the table: one per mode (for the terminal and the HTML). */
export function pinStormRows(p: PinStormReport): string[][] {
  return p.modes.map((m) => [
    m.mode, ratio(m.compactMovable), ratio(m.compactNormal), ratio(m.cma), ratio(m.offlineMovable), ratio(m.offlineNormal),
    fmtN(m.pagesMigrated), stuckText(m), fmtN(m.holderMoves), fmtN(m.holderPagesVerified),
  ]);
}

export function pinStormNote(p: PinStormReport): string {
  return `${p.rounds} round${p.rounds === 1 ? "" : "s"} of the same workload per mode; ${p.holders} holders of ${fmtN(p.heldPerHolder)} pages each in a region of ${fmtN(p.regionPages)} pages; compaction of each zone to order ${p.compactOrder}, CMA allocation of ${fmtN(p.cmaPages)} pages, offline of one pageblock per zone; successes/attempts`;
}

/** The terminal lines of the pin-storm section; `clean`: no run failed. */
export function formatPinStorm(p: PinStormReport, clean: boolean): string[] {
  const out = ["", `holds vs the kernel's movers: FOLL_GET references, FOLL_LONGTERM pins, pin control subsystem`, `  (${pinStormNote(p)})`];
  out.push(`  ${"mode".padEnd(9)} ${"cmp mov".padStart(8)} ${"cmp norm".padStart(8)} ${"CMA".padStart(8)} ${"off mov".padStart(8)} ${"off norm".padStart(8)} ${"migrated".padStart(9)} ${"holder moves".padStart(12)} ${"verified".padStart(9)}  could not move`);
  for (const r of pinStormRows(p)) {
    out.push(`  ${r[0]!.padEnd(9)} ${r[1]!.padStart(8)} ${r[2]!.padStart(8)} ${r[3]!.padStart(8)} ${r[4]!.padStart(8)} ${r[5]!.padStart(8)} ${r[6]!.padStart(9)} ${r[8]!.padStart(12)} ${r[9]!.padStart(9)}  ${r[7]}`);
  }
  for (const m of p.modes) if (m.longtermMigrated > 0) out.push(`  ${m.mode}: FOLL_LONGTERM moved ${fmtN(m.longtermMigrated)} pages out of ZONE_MOVABLE and CMA before pinning`);
  if (clean) out.push(`  lost bytes: ${fmtN(p.lostBytes)} (every holder's table entry and every page read back against the last write)`);
  return out;
}
