// Delta debugging of a failing program: drop chunks of ops (halves, quarters ... single
// ops), then simplify the arguments that are left (towards 0, then halving), keeping each
// change only if the program still fails the same way (same failure kind in the same
// kind of op). Ops that name things a dropped op made are skipped by the executor, so
// every candidate is a valid program.
import { runProgram, type ExecOptions, type FuzzFailure } from "./exec.js";
import type { Op, Program } from "./ops.js";

export interface ShrinkOptions extends ExecOptions {
  /** Candidate runs at most (default 2000). */
  maxRuns?: number;
  /** Wall-clock budget in ms (default 60 s). */
  maxMs?: number;
}

export interface ShrinkResult {
  program: Program;
  failure: FuzzFailure;
  runs: number;
}

export function shrinkProgram(prog: Program, failure: FuzzFailure, opts: ShrinkOptions = {}): ShrinkResult {
  const maxRuns = opts.maxRuns ?? 2000;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const sig = failure.signature;
  let best = prog;
  let bestFailure = failure;
  let runs = 0;
  const out = (): boolean => runs >= maxRuns || Date.now() > deadline;

  const tryOps = (ops: Op[]): boolean => {
    if (out()) return false;
    runs++;
    const cand: Program = { ...best, ops };
    const f = runProgram(cand, opts).failure;
    if (f && f.signature === sig) {
      best = cand;
      bestFailure = f;
      return true;
    }
    return false;
  };

  // Ops after the failing one never ran: cut them first.
  if (failure.opIndex < best.ops.length - 1) tryOps(best.ops.slice(0, failure.opIndex + 1));

  // ddmin over the op list (chunks, then single ops), then argument simplification; again
  // while simplifying helped (a simpler argument can make another op droppable).
  const ddmin = (): void => {
    let chunks = 2;
    while (!out() && best.ops.length > 1) {
      const size = Math.ceil(best.ops.length / chunks);
      let removed = false;
      for (let start = 0; start < best.ops.length && !out(); ) {
        const ops = [...best.ops.slice(0, start), ...best.ops.slice(start + size)];
        if (ops.length > 0 && tryOps(ops)) removed = true;
        else start += size;
      }
      if (size === 1 && !removed) break;
      chunks = removed ? Math.max(2, chunks - 1) : Math.min(best.ops.length, chunks * 2);
    }
  };
  const simplify = (): boolean => {
    let any = false;
    for (let i = 0; i < best.ops.length && !out(); i++) {
      for (let j = 1; j < best.ops[i]!.length && !out(); j++) {
        const v = best.ops[i]![j] as number;
        for (const smaller of v > 1 ? [0, 1, v >> 1] : v === 1 ? [0] : []) {
          const ops = best.ops.map((o) => [...o] as Op);
          ops[i]![j] = smaller;
          if (tryOps(ops)) {
            any = true;
            break;
          }
        }
      }
    }
    return any;
  };
  do ddmin();
  while (simplify() && !out());

  // A smaller machine content mode is simpler too: tags rather than bytes.
  if (best.machine.content === "bytes" && !out()) {
    runs++;
    const cand: Program = { ...best, machine: { content: "tags" } };
    const f = runProgram(cand, opts).failure;
    if (f && f.signature === sig) {
      best = cand;
      bestFailure = f;
    }
  }
  return { program: best, failure: bestFailure, runs };
}
