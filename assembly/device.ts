// ZONE_DEVICE ranges (memremap_pages): struct pages for device memory in the pfn space
// after system RAM. Each range is a zone of its own whose free pages sit on one list
// (the pcp list fields) for the owning driver to allocate from.
import { freedRing, freedRingSize, systemFrames, nframes, NONE } from "./layout";
import { setFlagsOf, setRef, refOf, setOrder, clearPageFields, PG_locked, PG_reserved } from "./memmap";
import { zoneStart, zoneEnd, zoneFree, setZoneFree, pcpPush, pcpPush4, pcpPop, pcpPopBulk, pcpCount, zonePgmapType, zoneIsDevice, zoneListsInit } from "./alloc";
import { zoneOf } from "./memmap";

export const MEMORY_DEVICE_PRIVATE: u32 = 1;
export const MEMORY_DEVICE_COHERENT: u32 = 2;
export const MEMORY_DEVICE_FS_DAX: u32 = 3;
export const MEMORY_DEVICE_GENERIC: u32 = 4;

// Pfns freed since TS last looked: it calls the owner's page_free for each.
let freedCount: u32 = 0;

export function freedPages(): u32 {
  return freedCount;
}
export function freedReset(): void {
  freedCount = 0;
}

// Unregistered device address space is a hole: reserved, owned by no zone.
export function deviceSpaceInit(): void {
  for (let pfn = systemFrames; pfn < nframes; pfn++) setFlagsOf(pfn, 1 << PG_reserved);
}

export function zoneDeviceInit(z: u32): void {
  const start = zoneStart(z);
  const end = zoneEnd(z);
  zoneListsInit(z);
  for (let pfn = end; pfn > start; pfn--) {
    setFlagsOf(pfn - 1, 0);
    pcpPush(z, pfn - 1);
  }
  setZoneFree(z, end - start);
}

// memunmap_pages, once every page is back on the free list.
export function zoneDeviceRelease(z: u32): bool {
  if (zoneFree(z) != zoneEnd(z) - zoneStart(z)) return false;
  while (pcpPop(z) != NONE) {}
  for (let pfn = zoneStart(z); pfn < zoneEnd(z); pfn++) setFlagsOf(pfn, 1 << PG_reserved);
  setZoneFree(z, 0);
  return true;
}

// A free device page for the driver, initialised as zone_device_page_init does:
// one reference, locked. NONE when the range has no free page.
export function allocDevicePage(z: u32): u32 {
  const pfn = pcpPop(z);
  if (pfn == NONE) return NONE;
  setZoneFree(z, zoneFree(z) - 1);
  zoneDevicePageInit(pfn);
  return pfn;
}

// allocDevicePage `want` times: up to that many pages into the u32 array at `out`.
export function allocDevicePagesBulk(z: u32, want: u32, out: usize): u32 {
  const n = min(want, pcpCount(z));
  pcpPopBulk(z, n, out);
  for (let k: u32 = 0; k < n; k++) zoneDevicePageInit(load<u32>(out + (<usize>k << 2)));
  setZoneFree(z, zoneFree(z) - n);
  return n;
}

@inline export function zoneDevicePageInit(pfn: u32): void {
  assert(refOf(pfn) == 0, "zone_device_page_init on a page in use");
  setRef(pfn, 1);
  setOrder(pfn, 0);
  setFlagsOf(pfn, 1 << PG_locked);
}

// free_zone_device_folio: clear the page, give it back to the range, tell the owner.
@inline export function freeDevicePage(z: u32, pfn: u32): void {
  clearPageFields(pfn);
  releaseDevicePage(z, pfn);
}

// freeDevicePage once the page's fields are cleared.
@inline export function releaseDevicePage(z: u32, pfn: u32): void {
  pcpPush(z, pfn);
  setZoneFree(z, zoneFree(z) + 1);
  if (freedCount < freedRingSize) store<u32>(freedRing + (<usize>freedCount << 2), pfn);
  freedCount++;
}

// releaseDevicePage for pfn..pfn+3, in that order.
@inline export function releaseDevicePages4(z: u32, pfn: u32): void {
  pcpPush4(z, pfn);
  setZoneFree(z, zoneFree(z) + 4);
  for (let k: u32 = 0; k < 4; k++) {
    if (freedCount < freedRingSize) store<u32>(freedRing + (<usize>freedCount << 2), pfn + k);
    freedCount++;
  }
}

@inline export function isDevicePrivatePage(pfn: u32): bool {
  const z = zoneOf(pfn);
  return zoneIsDevice(z) && zonePgmapType(z) == MEMORY_DEVICE_PRIVATE;
}

@inline export function isZoneDevicePage(pfn: u32): bool {
  return zoneIsDevice(zoneOf(pfn));
}

