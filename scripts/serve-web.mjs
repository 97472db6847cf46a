// A static file server for dist/browser/ on localhost (npm run web). No dependencies.
// Usage: node scripts/serve-web.mjs [--port N]   (default 8080; PORT also works; 0 picks a free one)
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { WEB_DIR } from "./build-web.mjs";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".json": "application/json",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".wasm": "application/wasm",
};

/** Starts serving `root` on 127.0.0.1:`port`; resolves to the server and its URL. */
export function serveWeb(root = WEB_DIR, port = 8080) {
  const base = resolve(root);
  const server = createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      return send(res, 400, "bad path");
    }
    const file = normalize(join(base, path.endsWith("/") ? `${path}index.html` : path));
    // Nothing outside the root, whatever the path says.
    if (file !== base && !file.startsWith(base + sep)) return send(res, 403, "forbidden");
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch {
      send(res, 404, "not found");
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ok({ server, url: `http://localhost:${server.address().port}/` }));
  });
}

function send(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(text);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--port");
  const port = Number(i > 0 ? process.argv[i + 1] : process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve-web: port must be an integer in [0, 65535]`);
    process.exit(2);
  }
  try {
    const { url } = await serveWeb(WEB_DIR, port);
    console.log(`mmemu demo: ${url}  (Ctrl-C to stop)`);
  } catch (e) {
    console.error(`serve-web: ${e.message}`);
    process.exit(1);
  }
}
