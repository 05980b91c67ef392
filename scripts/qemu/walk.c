/*
 * The irregular guest's workload: a fixed random walk over the pages of a buffer, with some work per
 * page. The order is irregular in guest-physical memory (a seeded permutation of the buffer's pages,
 * themselves scattered by the guest kernel's allocator) but the same in every round, for as long as
 * the process lives: an earlier migration of the same running VM saw the same order.
 *
 *   walk PAGES PASSES SEED   fill PAGES pages of memory from a PRNG, then forever: visit every page
 *                  in the permuted order, hash it (PASSES FNV-1a passes over its 4 KiB: the work per
 *                  page), and print "R <round> walk <32 hex digits>" (the same digits every round while
 *                  memory is intact) and "T <round> <ms>" (the round's time).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

static uint64_t s;
static uint64_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }

int main(int argc, char **argv) {
  size_t pages = argc > 1 ? strtoul(argv[1], 0, 10) : 512;
  int passes = argc > 2 ? atoi(argv[2]) : 16;
  s = argc > 3 ? strtoull(argv[3], 0, 10) : 88172645463325252ull;
  if (pages < 2 || passes < 1) { puts("walk: bad arguments"); return 1; }
  uint8_t *mem = malloc(pages * 4096);
  uint32_t *order = malloc(pages * sizeof *order);
  if (!mem || !order) { puts("walk: out of memory"); return 1; }
  for (size_t i = 0; i < pages * 4096 / 8; i++) ((uint64_t *)mem)[i] = rnd();
  for (size_t i = 0; i < pages; i++) order[i] = i;
  for (size_t i = pages - 1; i > 0; i--) { size_t j = rnd() % (i + 1); uint32_t t = order[i]; order[i] = order[j]; order[j] = t; }
  printf("GUEST ready\n");
  fflush(stdout);
  for (unsigned long round = 1;; round++) {
    uint64_t a = 1469598103934665603ull, b = 0x9e3779b97f4a7c15ull;
    double t0 = now_ms();
    for (size_t k = 0; k < pages; k++) {
      const uint8_t *p = mem + (size_t)order[k] * 4096;
      for (int pass = 0; pass < passes; pass++)
        for (int i = 0; i < 4096; i++) { a = (a ^ p[i]) * 1099511628211ull; b = (b + p[i]) * 0xff51afd7ed558ccdull; }
    }
    printf("R %lu walk %016llx%016llx\nT %lu %.0f\n", round, (unsigned long long)a, (unsigned long long)b, round, now_ms() - t0);
    fflush(stdout);
  }
}
