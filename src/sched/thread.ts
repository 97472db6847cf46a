// Simulated threads: a program is a generator that yields actions (a CPU access, some
// computation, a migration, any other call) and gets each one's result back when the
// scheduler has run it at the thread's simulated time. Programs use the helpers with
// `yield*`, which keeps results typed: `const tag = yield* t.read(p, addr)`.
import type { Process } from "../process.js";
import type { DevPagemap } from "../device/pagemap.js";
import type { CopyEngine } from "./engine.js";

export interface MigrateRequest {
  proc: Process;
  /** Page-aligned byte addresses inside one VMA, end exclusive. */
  start: number;
  end: number;
  /** MIGRATE_VMA_SELECT_* bits. */
  flags: number;
  pgmapOwner?: unknown;
  /** Where the new pages come from: device memory, or system memory of a node. */
  target: DevPagemap | { node: number };
  /** The engine that copies (its bandwidth sets how long the pages stay under migration). */
  engine: CopyEngine;
  /** Read-only migration entries instead of the kernel's blocking ones. */
  readOnlyEntries?: boolean;
  /** Failure injection: the first allocation fails ("alloc"), or the copy fails and the driver aborts ("abort"). */
  fail?: "alloc" | "abort";
}

export interface MigrateResult {
  /** Pages setup collected, and pages that moved. */
  cpages: number;
  moved: number;
  /** Simulated times: setup, the copy on the engine, and the end of finalize. */
  setupAt: number;
  copyStart: number;
  copyEnd: number;
  endAt: number;
}

export type Action =
  | { kind: "access"; proc: Process; addr: number; write: boolean; tag: bigint }
  | { kind: "compute"; ns: number }
  | { kind: "migrate"; req: MigrateRequest }
  | { kind: "call"; fn: () => unknown; ns: number };

export type ThreadState = "ready" | "sleeping" | "done" | "failed";

/** The helpers a program yields from; `now` is the thread's simulated time. */
export interface ThreadApi {
  readonly name: string;
  readonly now: number;
  /** A CPU load of the page's tag; sleeps while the page is under a migration entry. */
  read(proc: Process, addr: number): Generator<Action, bigint, unknown>;
  /** A CPU store of a tag; sleeps while the page is under any migration. */
  write(proc: Process, addr: number, tag: bigint): Generator<Action, void, unknown>;
  /** Spends `ns` of simulated time. */
  compute(ns: number): Generator<Action, void, unknown>;
  /** A driver's migrate_vma: setup now, the copy on the engine, pages + finalize when it is done. */
  migrate(req: MigrateRequest): Generator<Action, MigrateResult, unknown>;
  /** Any other call (fork, munmap, mprotect ...) at the thread's time; it costs `ns` (default: a syscall). */
  call<T>(fn: () => T, ns?: number): Generator<Action, T, unknown>;
}

export type Program = (t: ThreadApi) => Generator<Action, void, unknown>;

export class SimThread {
  state: ThreadState = "ready";
  /** Accesses completed, and their stall time. */
  accesses = 0;
  stallNs = 0;
  /** @internal When the access it is retrying first stalled (-1: none). */
  stallSince = -1;
  /** @internal When it last went to sleep. */
  sleptAt = 0;
  /** @internal The action to retry when woken. */
  pending: Action | null = null;
  /** @internal */
  gen: Generator<Action, void, unknown> | null = null;

  /** @internal Built by Scheduler.spawn(). */
  constructor(readonly id: number, readonly name: string) {}
}

export function threadApi(name: string, now: () => number, syscallNs: number): ThreadApi {
  return {
    name,
    get now() {
      return now();
    },
    *read(proc, addr) {
      return (yield { kind: "access", proc, addr, write: false, tag: 0n }) as bigint;
    },
    *write(proc, addr, tag) {
      yield { kind: "access", proc, addr, write: true, tag };
    },
    *compute(ns) {
      yield { kind: "compute", ns };
    },
    *migrate(req) {
      return (yield { kind: "migrate", req }) as MigrateResult;
    },
    *call<T>(fn: () => T, ns = syscallNs) {
      return (yield { kind: "call", fn, ns }) as T;
    },
  };
}
