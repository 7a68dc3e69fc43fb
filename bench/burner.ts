/**
 * A process that does nothing but use the CPU: from the wall-clock time
 * `startAt` for `ms` milliseconds, it spins in slices of 200 µs with pauses
 * between them, so as to take `share` of one core. The bench runs it beside
 * the 4-process appends to show what any other CPU use costs them on this
 * machine (the integrator's work on a signing log is such use).
 *   node burner.js <share> <ms> <startAt>
 */
const [shareText = '0.25', msText = '1000', startAtText = '0'] = process.argv.slice(2);
const share = Number(shareText);
const SLICE_MS = 0.2;
const wait = Number(startAtText) - Date.now();
if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
const end = performance.now() + Number(msText);
while (performance.now() < end) {
  const sliceEnd = performance.now() + SLICE_MS;
  while (performance.now() < sliceEnd) {
    // spin
  }
  await new Promise((resolve) => setTimeout(resolve, (SLICE_MS * (1 - share)) / share));
}
