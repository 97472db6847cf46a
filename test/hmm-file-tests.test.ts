// The file cases of the kernel selftest tools/testing/selftests/mm/hmm-tests.c (file_read,
// file_write, migrate_file_private), ported in the style of test/hmm-tests.test.ts against
// dmirror, plus what they imply for the page cache: a device write through hmm_range_fault
// dirties the file page, writeback write-protects it and invalidates the device's mapping
// (folio_mkclean's MMU_NOTIFY_PROTECTION_PAGE), so the next device write faults and dirties
// the page again and no device write is lost across fsync and a power failure.
// hmm_create_file is a file on an emulated block device, sized with ftruncate.
import { describe, it, expect } from "vitest";
import {
  HMM_PRIVATE_DEVICE_ONE, HMM_COHERENCE_DEVICE_ONE, HMM_BUFFER_SIZE, page_size, page_shift, RW, newBuffer, hmm_dmirror_cmd, intBytes, fillInts, assertInts,
} from "./hmm-selftest.js";
import {
  Machine, Process, PROT_READ, MAP_PRIVATE, MAP_SHARED, O_RDWR, O_CREAT,
  type OpenFile,
} from "../src/index.js";
import {
  createHmmDevices, type HmmDmirror, type HmmDmirrorDevice,
  HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS,
} from "../src/testing/index.js";

const NPAGES = Math.ceil(HMM_BUFFER_SIZE / page_size);

/** A file of NPAGES pages (the selftest's hmm_create_file), mapped with `flags` into a new hmm_buffer. */
function mapFile(p: Process, createFile: (size: number) => OpenFile, flags: number) {
  const npages = NPAGES;
  const size = npages << page_shift;
  const file = createFile(size);
  const buffer = newBuffer(size);
  buffer.ptr = p.mmap(0, size, RW, flags, file, 0);
  return { npages, size, file, buffer };
}

interface Self {
  m: Machine;
  p: Process;
  fd: HmmDmirror;
  devices: HmmDmirrorDevice[];
  /** hmm_create_file. */
  createFile: (size: number) => OpenFile;
}

function withHmm(device_number: number, body: (self: Self) => void): () => void {
  return () => {
    const m = Machine.create({ nodes: [{ normal: 16384 }], deviceMemory: 16384 });
    const devices = createHmmDevices(m);
    const p = m.spawn();
    const fs = m.mount(m.addBlockDevice("vda", { sectors: 4096 }));
    let n = 0;
    const createFile = (size: number): OpenFile => {
      const f = fs.open(`hmm-test-file-${n++}`, O_RDWR | O_CREAT);
      f.ftruncate(size);
      return f;
    };
    const fd = devices[device_number]!.open(p);
    body({ m, p, fd, devices, createFile });
    m.check();
    fd.close();
    m.check();
    p.exit();
    m.check();
  };
}

for (const dev of [HMM_PRIVATE_DEVICE_ONE, HMM_COHERENCE_DEVICE_ONE]) {
  const T = (name: string) => `hmm.${name} (device ${dev})`;

  describe(`hmm file mappings (device ${dev})`, () => {
    /* Read mmap'ed file memory. */
    it(T("file_read"), withHmm(dev, ({ m, p, fd, createFile }) => {
      const npages = NPAGES;
      const size = npages << page_shift;
      const file = createFile(size);
      const buffer = newBuffer(size);

      /* Write initial contents of the file. */
      fillInts(buffer.mirror, size / 4, (i) => i);
      expect(file.pwrite(buffer.mirror, 0)).toBe(size);
      buffer.mirror.fill(0);

      buffer.ptr = p.mmap(0, size, PROT_READ, MAP_SHARED, file, 0);

      /* Simulate a device reading system memory. */
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_READ, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      expect(buffer.faults).toBe(1);
      m.check();

      /* Check what the device read. */
      assertInts(buffer.mirror, 0, size / 4, (i) => i, "mirror");
      // The device read the page cache: no page was dirtied by it.
      file.fsync();
      expect(m.counters().nr_dirty).toBe(0);
      p.munmap(buffer.ptr, size);
    }));

    /* Write mmap'ed file memory. */
    it(T("file_write"), withHmm(dev, ({ m, p, fd, createFile }) => {
      const { npages, size, file, buffer } = mapFile(p, createFile, MAP_SHARED);

      /* Initialize data that the device will write to buffer->ptr. */
      fillInts(buffer.mirror, size / 4, (i) => i);

      /* Simulate a device writing system memory. */
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      expect(buffer.faults).toBe(1);
      m.check();

      /* Check what the device wrote. */
      assertInts(p.read(buffer.ptr, size), 0, size / 4, (i) => i, "ptr");

      /* Check that the device also wrote the file. */
      const back = file.pread(size, 0);
      expect(back.length).toBe(size);
      assertInts(back, 0, size / 4, (i) => i, "pread");
      // hmm_range_fault(HMM_PFN_REQ_WRITE) took write faults: every page is dirty.
      expect(m.counters().nr_dirty).toBe(npages);
      p.munmap(buffer.ptr, size);
    }));

    /* Migrate private file memory to device private memory. */
    it(T("migrate_file_private"), withHmm(dev, ({ m, p, fd, createFile }) => {
      const { npages, size, file, buffer } = mapFile(p, createFile, MAP_PRIVATE);

      /* Initialize buffer in system memory. */
      p.write(buffer.ptr, intBytes(size / 4, (i) => i));

      /* Migrate memory to device. */
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      m.check();

      /* Check what the device read. */
      assertInts(buffer.mirror, 0, size / 4, (i) => i, "mirror");

      // The COW copies moved, the file did not change; back in system memory they read the same.
      assertInts(file.pread(size, 0), 0, size / 4, () => 0, "file");
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      assertInts(p.read(buffer.ptr, size), 0, size / 4, (i) => i, "ptr");
      m.check();
      p.munmap(buffer.ptr, size);
    }));

    // Not in the selftest: a device write after writeback must fault again and dirty the page
    // (writeback write-protected it and invalidated the device's mapping), so fsync and a
    // power failure keep it.
    it(T("file_write after writeback re-dirties through hmm_range_fault"), withHmm(dev, ({ m, p, fd, createFile }) => {
      const npages = 16;
      const size = npages << page_shift;
      const file = createFile(size);
      const buffer = newBuffer(size);
      buffer.ptr = p.mmap(0, size, RW, MAP_SHARED, file, 0);
      fillInts(buffer.mirror, size / 4, (i) => i);
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
      expect(buffer.faults).toBe(1);
      file.fsync();
      expect(m.counters().nr_dirty).toBe(0);

      // Writeback took the device's writable mapping away: this write faults again.
      fillInts(buffer.mirror, size / 4, (i) => -i);
      expect(hmm_dmirror_cmd(fd, HMM_DMIRROR_WRITE, buffer, npages)).toBe(0);
      expect(buffer.cpages).toBe(npages);
      expect(buffer.faults).toBe(1);
      expect(m.counters().nr_dirty).toBe(npages);
      file.fsync();
      m.powerFail();
      m.check();
      assertInts(file.pread(size, 0), 0, size / 4, (i) => -i, "file after power failure");
      p.munmap(buffer.ptr, size);
    }));
  });
}
