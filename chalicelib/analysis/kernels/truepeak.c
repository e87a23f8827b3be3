/* True peak of a block of float32 samples (ITU-R BS.1770-4 Annex 2).
 *
 * Plain C99, no libc: called through ctypes by chalicelib/analysis/truepeak.py
 * (see native.py for the build).
 *
 * The interpolator is polyphase with 12 taps a phase: the value at the in-between
 * instant n + p/L reads samples n-5 .. n+6 (window n-5). Only the in-between phases
 * are computed: the filter passes the original samples unchanged. Values are float32
 * products summed in float32, as truepeak.py's numpy code did.
 *
 * Per block and channel: the windows straddling the last block and this one (from
 * the 11 samples of history kept per channel), then this block's own windows by
 * sub-blocks of `sub` windows, skipping those whose bound (the larger peak of the
 * sub-block and the next, times `overshoot`) cannot beat the running maximum.
 */
#include <math.h> /* fabsf only: a compiler builtin, no call */
#include <stdint.h>

#define TAPS 12
#define CONTEXT (TAPS - 1)
#define CHUNK 128 /* windows computed at once */
#define MAX_PHASES 3 /* 4x oversampling */

/* The loops over instants are always inlined, so that each entry point below is
 * compiled whole for its instruction set. On x86-64 (GCC, Clang) an AVX copy is
 * chosen at run time where the CPU has AVX: the library itself is built with
 * portable flags. */
#define INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WIDE 1
static int has_avx(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx");
}
#else
#define WIDE 0
static int has_avx(void)
{
    return 0;
}
#endif

/* pad = x[0 .. n) and zeros up to CHUNK + CONTEXT. */
INLINE const float *padded(float *pad, const float *x, int64_t n)
{
    for (int64_t i = 0; i < CHUNK + CONTEXT; i++)
        pad[i] = i < n ? x[i] : 0.0f;
    return pad;
}

/* Largest |value| at the in-between instants of windows [0, count) of x, count <=
 * CHUNK: window i reads x[i .. i + 11]. Always CHUNK windows (a short chunk is
 * copied and padded with zeros, its extra windows ignored), kept as an element-wise
 * maximum and reduced as a tree: fixed trip counts that the compiler vectorises
 * across instants even at -O2. */
/* The largest of best[0 .. count): the padding's windows do not count (no memset);
 * a tree of element-wise maxima, which the vectoriser turns into SIMD max. */
INLINE float chunk_result(float *best, int64_t count)
{
    for (int i = 0; i < CHUNK; i++)
        best[i] = i < count ? best[i] : 0.0f;
    for (int width = CHUNK / 2; width > 0; width /= 2)
        for (int i = 0; i < width; i++)
            best[i] = best[i + width] > best[i] ? best[i + width] : best[i];
    return best[0];
}

INLINE float chunk_max(const float *restrict x, int64_t count, const float *restrict phases,
                       int64_t nphases)
{
    float pad[CHUNK + CONTEXT];
    if (count < CHUNK)
        x = padded(pad, x, count + CONTEXT);
    float best[CHUNK]; /* set by the first phase (no memset) */
    for (int64_t p = 0; p < nphases; p++) {
        const float *h = phases + p * TAPS;
        const float h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5];
        const float h6 = h[6], h7 = h[7], h8 = h[8], h9 = h[9], h10 = h[10], h11 = h[11];
        for (int i = 0; i < CHUNK; i++) {
            const float *restrict w = x + i;
            float y = ((h0 * w[0] + h1 * w[1]) + (h2 * w[2] + h3 * w[3]))
                      + ((h4 * w[4] + h5 * w[5]) + (h6 * w[6] + h7 * w[7]))
                      + ((h8 * w[8] + h9 * w[9]) + (h10 * w[10] + h11 * w[11]));
            float a = fabsf(y);
            best[i] = p == 0 || a > best[i] ? a : best[i];
        }
    }
    return chunk_result(best, count);
}

/* The same for the three phases of 4x oversampling when the third is the first
 * reversed and the second symmetric (as a windowed sinc's are): with u = w[k] +
 * w[11-k] and v = w[k] - w[11-k], k < 6, the sum and difference of the first and
 * third are products with u and v, and max(|a|, |b|) = (|a + b| + |a - b|) / 2;
 * the second is a product with u. 6 loads folded, 18 products instead of 36. */
INLINE float chunk_max_folded(const float *restrict x, int64_t count, const float *restrict plus,
                              const float *restrict minus, const float *restrict mid)
{
    float pad[CHUNK + CONTEXT];
    if (count < CHUNK)
        x = padded(pad, x, count + CONTEXT);
    const float p0 = plus[0], p1 = plus[1], p2 = plus[2], p3 = plus[3], p4 = plus[4],
                p5 = plus[5];
    const float m0 = minus[0], m1 = minus[1], m2 = minus[2], m3 = minus[3], m4 = minus[4],
                m5 = minus[5];
    const float c0 = mid[0], c1 = mid[1], c2 = mid[2], c3 = mid[3], c4 = mid[4], c5 = mid[5];
    float best[CHUNK];
    for (int i = 0; i < CHUNK; i++) {
        const float *restrict w = x + i;
        float u0 = w[0] + w[11], u1 = w[1] + w[10], u2 = w[2] + w[9];
        float u3 = w[3] + w[8], u4 = w[4] + w[7], u5 = w[5] + w[6];
        float v0 = w[0] - w[11], v1 = w[1] - w[10], v2 = w[2] - w[9];
        float v3 = w[3] - w[8], v4 = w[4] - w[7], v5 = w[5] - w[6];
        float sum = (p0 * u0 + p1 * u1) + (p2 * u2 + p3 * u3) + (p4 * u4 + p5 * u5);
        float diff = (m0 * v0 + m1 * v1) + (m2 * v2 + m3 * v3) + (m4 * v4 + m5 * v5);
        float centre = (c0 * u0 + c1 * u1) + (c2 * u2 + c3 * u3) + (c4 * u4 + c5 * u5);
        float side = 0.5f * (fabsf(sum) + fabsf(diff));
        float a = fabsf(centre);
        best[i] = side > a ? side : a;
    }
    return chunk_result(best, count);
}

/* The interpolator as chunk_max reads it: the phases as given, or folded. */
typedef struct {
    const float *phases;
    int64_t nphases;
    int folded, wide;
    float plus[TAPS / 2], minus[TAPS / 2], mid[TAPS / 2];
} Interpolator;

static Interpolator interpolator(const float *phases, int64_t nphases, int wide)
{
    Interpolator f = {phases, nphases, 0, wide && has_avx(), {0}, {0}, {0}};
    if (nphases != 3)
        return f;
    for (int k = 0; k < TAPS; k++)
        if (phases[2 * TAPS + k] != phases[TAPS - 1 - k] || phases[TAPS + k] != phases[2 * TAPS - 1 - k])
            return f;
    for (int k = 0; k < TAPS / 2; k++) {
        f.plus[k] = phases[k] + phases[TAPS - 1 - k];
        f.minus[k] = phases[k] - phases[TAPS - 1 - k];
        f.mid[k] = phases[TAPS + k];
    }
    f.folded = 1;
    return f;
}

INLINE float windows_max(const float *x, int64_t count, const Interpolator *f)
{
    float top = 0.0f;
    for (int64_t done = 0; done < count; done += CHUNK) {
        int64_t take = count - done < CHUNK ? count - done : CHUNK;
        float m = f->folded ? chunk_max_folded(x + done, take, f->plus, f->minus, f->mid)
                            : chunk_max(x + done, take, f->phases, f->nphases);
        top = m > top ? m : top;
    }
    return top;
}

static float windows_max_baseline(const float *x, int64_t count, const Interpolator *f)
{
    return windows_max(x, count, f);
}

#if WIDE
/* The same compiled for AVX (8 floats a vector, not SSE2's 4), used where the CPU
 * has it: no fused multiply-add, the same operations in the same order, so the
 * same results to the bit. */
__attribute__((target("avx"))) static float windows_max_avx(const float *x, int64_t count,
                                                            const Interpolator *f)
{
    return windows_max(x, count, f);
}
#endif

static float windows_max_best(const float *x, int64_t count, const Interpolator *f)
{
#if WIDE
    if (f->wide)
        return windows_max_avx(x, count, f);
#endif
    return windows_max_baseline(x, count, f);
}

/* Largest |value| at the in-between instants of every window of x[0 .. n) (n - 11
 * windows; none if n < 12). phases: float32 (nphases, 12); wide: 0 for the
 * baseline code even where AVX is there (to compare). -1 if nphases is not 1 to 3. */
double soundcheck_interpolated_max(const float *x, int64_t n, const float *phases,
                                   int64_t nphases, int64_t wide)
{
    if (nphases < 1 || nphases > MAX_PHASES)
        return -1.0;
    Interpolator f = interpolator(phases, nphases, wide != 0);
    return n > CONTEXT ? (double)windows_max_best(x, n - CONTEXT, &f) : 0.0;
}

/* One block of a stream: x float32 (channels, n); peaks float32 (channels, npeaks),
 * the largest |sample| of each `sub` frames of x; history float32 (channels, 11)
 * whose first *kept samples a row are the last ones before this block (both
 * updated here for the next). Returns the largest of `floor` and the values that
 * can beat it; -1 if nphases is not 1 to 3 or sub < 1. */
double soundcheck_truepeak_block(const float *x, int64_t channels, int64_t n,
                                 const float *peaks, int64_t npeaks, int64_t sub,
                                 float *history, int64_t *kept, const float *phases,
                                 int64_t nphases, double overshoot, double floor)
{
    if (nphases < 1 || nphases > MAX_PHASES || sub < 1)
        return -1.0;
    const Interpolator f = interpolator(phases, nphases, 1);
    const int64_t had = *kept;
    for (int64_t c = 0; c < channels; c++) {
        const float *row = x + c * n;
        const float *peak = peaks + c * npeaks;
        float *hist = history + c * CONTEXT;
        /* The history and this block's first samples: the windows that read both,
         * and the last CONTEXT samples of the stream so far. */
        float joint[2 * CONTEXT];
        int64_t head = n < CONTEXT ? n : CONTEXT, length = had + head;
        for (int64_t i = 0; i < 2 * CONTEXT; i++) /* (fixed count: no memcpy call) */
            joint[i] = i < had ? hist[i] : i < length ? row[i - had] : 0.0f;
        if (had > 0 && length > CONTEXT) {
            float top = 0.0f;
            for (int64_t i = 0; i < length; i++)
                top = fabsf(joint[i]) > top ? fabsf(joint[i]) : top;
            if ((double)top * overshoot > floor) {
                double m = windows_max_best(joint, length - CONTEXT, &f);
                floor = m > floor ? m : floor;
            }
        }
        /* This block's own windows: window i reads row[i .. i + 11], those of
         * sub-block s read sub-blocks s and s + 1. */
        int64_t windows = n - CONTEXT;
        for (int64_t s = 0; s * sub < windows; s++) {
            float nearby = peak[s];
            if (s + 1 < npeaks && peak[s + 1] > nearby)
                nearby = peak[s + 1];
            if ((double)nearby * overshoot <= floor)
                continue;
            int64_t take = windows - s * sub < sub ? windows - s * sub : sub;
            double m = windows_max_best(row + s * sub, take, &f);
            floor = m > floor ? m : floor;
        }
        /* The last CONTEXT samples (all, if fewer) for the next block. */
        int64_t keep = length < CONTEXT ? length : CONTEXT;
        const float *last = n >= CONTEXT ? row + n - CONTEXT : joint + length - keep;
        for (int64_t i = 0; i < CONTEXT; i++)
            hist[i] = i < keep ? last[i] : 0.0f;
    }
    int64_t total = had + n;
    *kept = total < CONTEXT ? total : CONTEXT;
    return floor;
}
