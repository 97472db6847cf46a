import { Machine, O_RDWR, O_CREAT, MAP_SHARED, PROT_READ, PROT_WRITE } from "../src/index.js";
import { fuzzMachineConfig } from "../src/fuzz/exec.js";
const m = Machine.create(fuzzMachineConfig("tags", "debug"));
const dev = m.addBlockDevice("vda", { sectors: 256 });
const fs = m.mount(dev);
const f = fs.open("f", O_RDWR | O_CREAT);
const p = m.spawn();
const a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
f.ftruncate(4096);
const b = p.batch(); b.readTag(a); const r = p.run(b); console.log(r);
try { m.check(); console.log("after read ok"); } catch (e) { console.log("after read:", (e as Error).message); }
const m2 = Machine.create({ content: "tags" });
const fs2 = m2.mount(m2.addBlockDevice("vda", { sectors: 256 }));
const f2 = fs2.open("f", O_RDWR | O_CREAT);
const p2 = m2.spawn();
const a2 = p2.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f2, 0);
f2.ftruncate(4096);
const b2 = p2.batch(); b2.readTag(a2); console.log(p2.run(b2));
try { m2.check(); console.log("m2 ok"); } catch (e) { console.log("m2:", (e as Error).message); }
