import type { Server } from "node:http";
/** Serves `root` on 127.0.0.1:`port` (0: a free port). */
export function serveWeb(root?: string, port?: number): Promise<{ server: Server; url: string }>;
