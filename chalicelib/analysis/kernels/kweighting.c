/* K-weighting and 100 ms sub-block energies, ITU-R BS.1770-4 (section 2.1, Annex 1).
 *
 * Plain C99, no libc: called through ctypes by chalicelib/analysis/loudness.py
 * (see native.py for the build). Each measured channel of a float32 block runs
 * through the two K-weighting biquads (the shelf, then the high-pass) in float64,
 * as two cascaded transposed direct form II sections in exactly the order of
 * operations of scipy.signal.sosfilt (and no fused multiply-add: native.py's
 * flags); its squares are summed per 100 ms sub-block and weighted by the
 * channel's gain (BS.1770-4 Table 3). The filter state is carried
 * between calls, the caller carries the partial sub-block.
 *
 * Denormals: once the input falls silent the states decay towards zero and, in
 * plain IEEE arithmetic, through the denormal range, where an x86 core runs
 * about 100 times slower. Every FLUSH_EVERY samples a section whose two states
 * are both below TINY in magnitude is set to zero. That changes an output by at
 * most ~1e-150, nothing beside any non-zero float32 sample (>= 1.4e-45), and keeps
 * the arithmetic away from denormals: the fastest decay (the shelf's poles at
 * 8 kHz, radius 0.43) takes 32 samples through 12 of the 158 decades between
 * TINY and the denormal range.
 */

#include <stdint.h>

#define TINY 1e-150
#define FLUSH_EVERY 32

/* Two float64 lanes (SSE2 on x86-64, NEON on aarch64: both baseline), one channel
 * each: the GCC/Clang vector extension, the only thing here beyond C99. */
typedef double pair __attribute__((vector_size(16)));

/* State of one channel: z0 and z1 of the first section, then of the second. */
enum { Z10, Z11, Z20, Z21, STATES };

/* One transposed direct form II step, scipy's sosfilt order of operations;
 * c = b0 b1 b2 a0 a1 a2 (a0 == 1); works on doubles and on pairs alike. */
#define STEP(b0, b1, b2, a1, a2, x, y, z0, z1) \
    do {                                        \
        (y) = (b0) * (x) + (z0);                \
        (z0) = (b1) * (x) - (a1) * (y) + (z1);  \
        (z1) = (b2) * (x) - (a2) * (y);         \
    } while (0)

static int tiny(double a, double b)
{
    return a < TINY && a > -TINY && b < TINY && b > -TINY;
}

static void flush(double *z)
{
    if (tiny(z[Z10], z[Z11])) {
        z[Z10] = 0.0;
        z[Z11] = 0.0;
    }
    if (tiny(z[Z20], z[Z21])) {
        z[Z20] = 0.0;
        z[Z21] = 0.0;
    }
}

/* Sum of the squared K-weighted samples x[lo..hi) of one channel; z = its states. */
static double one(const double *c, double *z, const float *x, int64_t lo, int64_t hi)
{
    double sum = 0.0;
    while (lo < hi) {
        int64_t stop = hi - lo > FLUSH_EVERY ? lo + FLUSH_EVERY : hi;
        double p0 = z[Z10], p1 = z[Z11], q0 = z[Z20], q1 = z[Z21];
        for (int64_t i = lo; i < stop; ++i) {
            double in = (double)x[i], u, y;
            STEP(c[0], c[1], c[2], c[4], c[5], in, u, p0, p1);
            STEP(c[6], c[7], c[8], c[10], c[11], u, y, q0, q1);
            sum += y * y;
        }
        z[Z10] = p0, z[Z11] = p1, z[Z20] = q0, z[Z21] = q1;
        flush(z);
        lo = stop;
    }
    return sum;
}

/* The same for two channels x and v at once, one in each lane of a pair: half the
 * instructions, and two independent recurrences in flight. */
static void two(const double *c, double *z, double *w, const float *x, const float *v,
                int64_t lo, int64_t hi, double *sum_x, double *sum_v)
{
#define BOTH(k) {c[k], c[k]}
    const pair b10 = BOTH(0), b11 = BOTH(1), b12 = BOTH(2), a11 = BOTH(4), a12 = BOTH(5);
    const pair b20 = BOTH(6), b21 = BOTH(7), b22 = BOTH(8), a21 = BOTH(10), a22 = BOTH(11);
#undef BOTH
    pair sum = {0.0, 0.0};
    while (lo < hi) {
        int64_t stop = hi - lo > FLUSH_EVERY ? lo + FLUSH_EVERY : hi;
        pair p0 = {z[Z10], w[Z10]}, p1 = {z[Z11], w[Z11]};
        pair q0 = {z[Z20], w[Z20]}, q1 = {z[Z21], w[Z21]};
        for (int64_t i = lo; i < stop; ++i) {
            pair in = {(double)x[i], (double)v[i]}, u, y;
            STEP(b10, b11, b12, a11, a12, in, u, p0, p1);
            STEP(b20, b21, b22, a21, a22, u, y, q0, q1);
            sum += y * y;
        }
        z[Z10] = p0[0], z[Z11] = p1[0], z[Z20] = q0[0], z[Z21] = q1[0];
        w[Z10] = p0[1], w[Z11] = p1[1], w[Z20] = q0[1], w[Z21] = q1[1];
        flush(z);
        flush(w);
        lo = stop;
    }
    *sum_x += sum[0];
    *sum_v += sum[1];
}

/* K-weight `count` channels of a block and add their weighted energies per segment.
 *
 * samples  float32 (channels, frames), C-contiguous (row c starts at c * frames)
 * used     [count] indices of the measured channels; gains [count] their weights
 * sos      [12] the two sections as scipy's sos rows (b0 b1 b2 1 a1 a2)
 * state    [count * STATES] float64 filter states, updated (z0 z1 of each section)
 * ends     [segments - 1] ascending segment ends, 0 <= end <= frames: segment k is
 *          [ends[k-1], ends[k]) with ends[-1] = 0 and ends[segments-1] = frames
 * energies [segments] accumulated (the caller zeroes them): for each segment, the sum
 *          over the channels of gain * the channel's sum of squares in the segment
 */
void soundcheck_kweighting(const float *samples, int64_t frames, const int64_t *used,
                           const double *gains, int64_t count, const double *sos,
                           double *state, const int64_t *ends, int64_t segments,
                           double *energies)
{
    int64_t c = 0;
    for (; c + 1 < count; c += 2) {
        const float *x = samples + used[c] * frames, *v = samples + used[c + 1] * frames;
        for (int64_t k = 0; k < segments; ++k) {
            int64_t lo = k ? ends[k - 1] : 0, hi = k + 1 < segments ? ends[k] : frames;
            double sx = 0.0, sv = 0.0;
            two(sos, state + STATES * c, state + STATES * (c + 1), x, v, lo, hi, &sx, &sv);
            energies[k] += gains[c] * sx + gains[c + 1] * sv;
        }
    }
    if (c < count) {
        const float *x = samples + used[c] * frames;
        for (int64_t k = 0; k < segments; ++k) {
            int64_t lo = k ? ends[k - 1] : 0, hi = k + 1 < segments ? ends[k] : frames;
            energies[k] += gains[c] * one(sos, state + STATES * c, x, lo, hi);
        }
    }
}
