/* Sums for the stereo image of a pair of float32 rows (stereo_series.py).
 *
 * Plain C99, no libc: called through ctypes by chalicelib/analysis/stereo_series.py
 * (see native.py for the build). Everything is summed in float64 (a float32 square
 * overflows above 1.8e19 and underflows below 1e-23).
 *
 * Per second: LL, RR and LR over each whole `period` frames. Low end: the mean of
 * each 8 samples (a boxcar), then a 4th-order low-pass
 * given as two second-order sections (scipy's sos layout: b0 b1 b2 a0 a1 a2, a0 =
 * 1) in transposed direct form II, then LL, RR and LR of what passes. The
 * unfinished second, the last incomplete group of 8 and the filter state are
 * carried between calls in the caller's arrays.
 *
 * Denormals: in silence the filter state decays towards zero through the denormal
 * range, where an x86 core runs about 100 times slower. Every FLUSH_EVERY outputs
 * a section whose two states are both below TINY in magnitude is set to zero
 * (kweighting.c does the same): an output changes by at most ~1e-150, nothing
 * beside any non-zero float32 sample.
 */
#include <stdint.h>

#define DECIMATE 8
#define TINY 1e-150
#define FLUSH_EVERY 32

/* Two float64 lanes (SSE2 on x86-64, NEON on aarch64: both baseline): the GCC/Clang
 * vector extension, as in kweighting.c, the only thing here beyond C99. */
typedef double pair __attribute__((vector_size(16)));

/* The low-pass coefficients as pairs (the same for both channels). */
typedef struct {
    pair b0, b1, b2, a1, a2, d0, d1, d2, e1, e2;
} Sections;

static int tiny(pair z0, pair z1, int k)
{
    return z0[k] < TINY && z0[k] > -TINY && z1[k] < TINY && z1[k] > -TINY;
}

/* Frames [0, 8 groups) of l and r, the first at the start of a group of 8: adds
 * LL, RR and LR to sums[0..3); low-passes the mean of each group of 8 (both
 * channels at once, one in each lane) and adds the products of the outputs to low.
 * zi: z0 z1 of the first section for channels l and r, then of the second (scipy's
 * zi (sections, channels, 2) order). */
static void groups_of_8(const float *l, const float *r, int64_t groups, const Sections *c,
                        double *zi, double *sums, double *low)
{
    pair ll0 = {0.0, 0.0}, ll1 = ll0, rr0 = ll0, rr1 = ll0, lr0 = ll0, lr1 = ll0;
    pair z0 = {zi[0], zi[2]}, z1 = {zi[1], zi[3]}, w0 = {zi[4], zi[6]}, w1 = {zi[5], zi[7]};
    pair squares = {0.0, 0.0};
    double cross = 0.0;
    for (int64_t g = 0; g < groups;) {
        int64_t end = groups - g < FLUSH_EVERY ? groups : g + FLUSH_EVERY;
        for (; g < end; g++) {
            const float *p = l + DECIMATE * g, *q = r + DECIMATE * g;
            pair l01 = {p[0], p[1]}, l23 = {p[2], p[3]}, l45 = {p[4], p[5]}, l67 = {p[6], p[7]};
            pair r01 = {q[0], q[1]}, r23 = {q[2], q[3]}, r45 = {q[4], q[5]}, r67 = {q[6], q[7]};
            ll0 += l01 * l01 + l45 * l45;
            ll1 += l23 * l23 + l67 * l67;
            rr0 += r01 * r01 + r45 * r45;
            rr1 += r23 * r23 + r67 * r67;
            lr0 += l01 * r01 + l45 * r45;
            lr1 += l23 * r23 + l67 * r67;
            /* The means: lanes (even, odd) summed pairwise, then the two lanes. */
            pair sl = (l01 + l23) + (l45 + l67), sr = (r01 + r23) + (r45 + r67);
            pair x = {(sl[0] + sl[1]) * (1.0 / DECIMATE), (sr[0] + sr[1]) * (1.0 / DECIMATE)};
            /* y = b0 x + z0; z0 = b1 x - a1 y + z1; z1 = b2 x - a2 y; the products of
             * x first: only a1 y waits for y. */
            pair y = c->b0 * x + z0;
            z0 = (c->b1 * x + z1) - c->a1 * y;
            z1 = c->b2 * x - c->a2 * y;
            pair u = c->d0 * y + w0;
            w0 = (c->d1 * y + w1) - c->e1 * u;
            w1 = c->d2 * y - c->e2 * u;
            squares += u * u;
            cross += u[0] * u[1];
        }
        for (int k = 0; k < 2; k++) {
            if (tiny(z0, z1, k))
                z0[k] = z1[k] = 0.0;
            if (tiny(w0, w1, k))
                w0[k] = w1[k] = 0.0;
        }
    }
    zi[0] = z0[0], zi[1] = z1[0], zi[2] = z0[1], zi[3] = z1[1];
    zi[4] = w0[0], zi[5] = w1[0], zi[6] = w0[1], zi[7] = w1[1];
    pair ll = ll0 + ll1, rr = rr0 + rr1, lr = lr0 + lr1;
    sums[0] += ll[0] + ll[1];
    sums[1] += rr[0] + rr[1];
    sums[2] += lr[0] + lr[1];
    low[0] += squares[0];
    low[1] += squares[1];
    low[2] += cross;
}

/* One frame at a time (at the edges of a second or of a group): its products to
 * sums, its samples to the waiting group, low-passed once complete. */
static void one_frame(float x, float y, const Sections *c, double *zi, float *rest,
                      int64_t *rest_n, double *sums, double *low)
{
    sums[0] += (double)x * x;
    sums[1] += (double)y * y;
    sums[2] += (double)x * y;
    rest[*rest_n] = x;
    rest[DECIMATE + *rest_n] = y;
    if (++*rest_n == DECIMATE) {
        double ignored[3] = {0.0, 0.0, 0.0};
        groups_of_8(rest, rest + DECIMATE, 1, c, zi, ignored, low);
        *rest_n = 0;
    }
}

/* One block: rows `left` and `right` of x, float32 (channels, n).
 *
 * state float64 (14): LL, RR, LR of the unfinished second; LL, RR, LR of the
 * low-passed pair; the filter state, z0 z1 of the first section for the left and
 * the right channel, then of the second (scipy's zi (sections, channels, 2)).
 * counts int64 (2): frames of the unfinished second, samples waiting in rest
 * float32 (2, 8) for a group of 8. sos (2, 6). Each second completed here has its
 * sums written to finished[3 k ..] (room for n / period + 1 rows) and the next
 * starts from zero. Returns the count of completed seconds; -1 if decimate is not
 * 8 or sections not 2. */
int64_t soundcheck_stereo_block(const float *x, int64_t n, int64_t left, int64_t right,
                                int64_t period, int64_t decimate, const double *sos,
                                int64_t sections, double *state, int64_t *counts, float *rest,
                                double *finished)
{
    if (decimate != DECIMATE || sections != 2 || period < 1)
        return -1;
    const float *l = x + left * n, *r = x + right * n;
    double *second = state, *low = state + 3, *zi = state + 6;
    int64_t *filled = counts, *rest_n = counts + 1;
    Sections c;
    pair *coefficient[] = {&c.b0, &c.b1, &c.b2, &c.a1, &c.a2, &c.d0, &c.d1, &c.d2, &c.e1, &c.e2};
    const int at[] = {0, 1, 2, 4, 5, 6, 7, 8, 10, 11};
    for (int k = 0; k < 10; k++)
        *coefficient[k] = (pair){sos[at[k]], sos[at[k]]};
    int64_t seconds = 0;
    for (int64_t i = 0; i < n;) {
        /* Up to the end of this second or of the block: frames one at a time until
         * a group starts, whole groups, the rest one at a time. */
        int64_t end = period - *filled < n - i ? i + period - *filled : n;
        *filled += end - i;
        for (; i < end && *rest_n > 0; i++)
            one_frame(l[i], r[i], &c, zi, rest, rest_n, second, low);
        int64_t groups = (end - i) / DECIMATE;
        groups_of_8(l + i, r + i, groups, &c, zi, second, low);
        for (i += DECIMATE * groups; i < end; i++)
            one_frame(l[i], r[i], &c, zi, rest, rest_n, second, low);
        if (*filled == period) {
            for (int j = 0; j < 3; j++) {
                finished[3 * seconds + j] = second[j];
                second[j] = 0.0;
            }
            seconds++;
            *filled = 0;
        }
    }
    return seconds;
}
