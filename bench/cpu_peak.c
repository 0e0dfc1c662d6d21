// Peak multiply-accumulates per second of CPU time on one core, for the floors in BENCHMARKS.md:
// FP32 with AVX2 FMA (12 independent accumulators, more than latency x throughput), INT8 as u8*s8
// dot products with AVX2 (vpmaddubsw + vpmaddwd + vpaddd, what CPUs without VNNI run). CPU time,
// not wall time, so other processes on a shared machine do not lower it. x86 with AVX2 only:
//   cc -O2 -mavx2 -mfma bench/cpu_peak.c -o /tmp/cpu_peak && /tmp/cpu_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
#define R(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
int main(int argc, char **argv) {
    const long iters = 100000000;
    __m256 b = _mm256_set1_ps(argc * 1.0000001f), c = _mm256_set1_ps(1e-7f);
#define DA(i) __m256 a##i = _mm256_set1_ps(i);
    R(DA)
    double t = now();
    for (long n = 0; n < iters; n++) {
#define FM(i) a##i = _mm256_fmadd_ps(a##i, b, c);
        R(FM)
        __asm__ volatile("" : "+x"(b));
    }
    double dt = now() - t;
    float s = 0;
#define SA(i) s += a##i[0];
    R(SA)
    printf("fp32 %.1f GMAC/s per core (%g)\n", iters * 12.0 * 8 / dt / 1e9, s);
    __m256i u = _mm256_set1_epi8(argc + 2), one = _mm256_set1_epi16(1);
#define DX(i) __m256i x##i = _mm256_set1_epi32(i); __m256i w##i = _mm256_set1_epi8(i);
    R(DX)
    t = now();
    for (long n = 0; n < iters; n++) {
#define IM(i) x##i = _mm256_add_epi32(x##i, _mm256_madd_epi16(_mm256_maddubs_epi16(u, w##i), one));
        R(IM)
        __asm__ volatile("" : "+x"(u));
    }
    dt = now() - t;
    long z = 0;
#define SX(i) z += _mm256_extract_epi32(x##i, 0);
    R(SX)
    printf("int8 %.1f GMAC/s per core (%ld)\n", iters * 12.0 * 32 / dt / 1e9, z);
    return 0;
}
