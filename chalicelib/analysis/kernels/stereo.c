/* Sums for the stereo image of a pair of float32 rows (stereo_series.py).
 *
 * Plain C99, no libc: called through ctypes by chalicelib/analysis/stereo_series.py
 * (see native.py for the build). Everything is summed in float64 (a float32 square
 * overflows above 1.8e19 and underflows below 1e-23).
 *
 * Per second: LL, RR and LR over each whole `period` frames. Low end: the mean of
 * each 8 samples (a boxcar, pairwise as numpy summed it), then a 4th-order low-pass
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
#define LANES 4 /* independent partial sums: the compiler may vectorise them */
#define TINY 1e-150
#define FLUSH_EVERY 32

/* sums[0..3) += LL, RR, LR of l[0 .. n), r[0 .. n). */
static void pair_sums(const float *l, const float *r, int64_t n, double *sums)
{
    double ll[LANES] = {0}, rr[LANES] = {0}, lr[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double a = l[i + j], b = r[i + j];
            ll[j] += a * a;
            rr[j] += b * b;
            lr[j] += a * b;
        }
    for (; i < n; i++) {
        double a = l[i], b = r[i];
        ll[0] += a * a;
        rr[0] += b * b;
        lr[0] += a * b;
    }
    sums[0] += (ll[0] + ll[1]) + (ll[2] + ll[3]);
    sums[1] += (rr[0] + rr[1]) + (rr[2] + rr[3]);
    sums[2] += (lr[0] + lr[1]) + (lr[2] + lr[3]);
}

/* Mean of 8 consecutive samples, pairwise. */
static double boxcar(const float *p)
{
    return ((((double)p[0] + p[1]) + ((double)p[2] + p[3]))
            + (((double)p[4] + p[5]) + ((double)p[6] + p[7])))
           * (1.0 / DECIMATE);
}

/* The low-pass state: z0 z1 of the first section for channels a and b, then of the
 * second (scipy's zi (sections, channels, 2) order), and its coefficients. */
typedef struct {
    double b0, b1, b2, a1, a2, d0, d1, d2, e1, e2;
} Sections;

static int tiny(double a, double b)
{
    return a < TINY && a > -TINY && b < TINY && b > -TINY;
}

/* Low-passes `count` reduced samples of each channel (a[k], b[k] from the groups of
 * 8 at l + 8k, r + 8k) and adds the products of the outputs to low. */
static void low_end(const float *l, const float *r, int64_t count, const Sections *c, double *zi,
                    double *low)
{
    double za0 = zi[0], za1 = zi[1], zb0 = zi[2], zb1 = zi[3];
    double wa0 = zi[4], wa1 = zi[5], wb0 = zi[6], wb1 = zi[7];
    double s0 = 0.0, s1 = 0.0, s2 = 0.0;
    for (int64_t done = 0; done < count;) {
        int64_t end = count - done < FLUSH_EVERY ? count : done + FLUSH_EVERY;
        for (; done < end; done++) {
            double a = boxcar(l + DECIMATE * done), b = boxcar(r + DECIMATE * done);
            /* y = b0 x + z0; z0 = b1 x - a1 y + z1; z1 = b2 x - a2 y; the products of
             * x first: only a1 y waits for y. */
            double ya = c->b0 * a + za0, yb = c->b0 * b + zb0;
            za0 = (c->b1 * a + za1) - c->a1 * ya;
            zb0 = (c->b1 * b + zb1) - c->a1 * yb;
            za1 = c->b2 * a - c->a2 * ya;
            zb1 = c->b2 * b - c->a2 * yb;
            double ua = c->d0 * ya + wa0, ub = c->d0 * yb + wb0;
            wa0 = (c->d1 * ya + wa1) - c->e1 * ua;
            wb0 = (c->d1 * yb + wb1) - c->e1 * ub;
            wa1 = c->d2 * ya - c->e2 * ua;
            wb1 = c->d2 * yb - c->e2 * ub;
            s0 += ua * ua;
            s1 += ub * ub;
            s2 += ua * ub;
        }
        if (tiny(za0, za1))
            za0 = za1 = 0.0;
        if (tiny(zb0, zb1))
            zb0 = zb1 = 0.0;
        if (tiny(wa0, wa1))
            wa0 = wa1 = 0.0;
        if (tiny(wb0, wb1))
            wb0 = wb1 = 0.0;
    }
    zi[0] = za0, zi[1] = za1, zi[2] = zb0, zi[3] = zb1;
    zi[4] = wa0, zi[5] = wa1, zi[6] = wb0, zi[7] = wb1;
    low[0] += s0;
    low[1] += s1;
    low[2] += s2;
}

/* One block of the pair: l, r float32 [0 .. n).
 *
 * filled: frames of the unfinished second so far, second[3] its sums; each second
 * completed here has its sums written to finished[3 k ..] (room for n / period + 1
 * rows) and the next one starts from zero. Returns the count of completed seconds;
 * -1 if decimate is not 8 or sections not 2.
 *
 * sos (2, 6); zi (2 sections, 2 channels, 2) the filter state; rest float32 (2, 8)
 * and *rest_n the samples of an incomplete group of 8; low[3] the sums of the
 * low-passed pair. */
int64_t soundcheck_stereo_block(const float *l, const float *r, int64_t n, int64_t period,
                                int64_t *filled, double *second, double *finished,
                                int64_t decimate, const double *sos, int64_t sections,
                                double *zi, float *rest, int64_t *rest_n, double *low)
{
    if (decimate != DECIMATE || sections != 2 || period < 1)
        return -1;
    /* Sums per second. */
    int64_t seconds = 0;
    for (int64_t done = 0; done < n;) {
        int64_t take = period - *filled < n - done ? period - *filled : n - done;
        pair_sums(l + done, r + done, take, second);
        *filled += take;
        done += take;
        if (*filled == period) {
            for (int j = 0; j < 3; j++) {
                finished[3 * seconds + j] = second[j];
                second[j] = 0.0;
            }
            seconds++;
            *filled = 0;
        }
    }
    /* Low end at 1/8 of the rate: complete the waiting group, then whole groups;
     * what is left waits for the next block. */
    const Sections c = {sos[0], sos[1], sos[2], sos[4], sos[5],
                        sos[6], sos[7], sos[8], sos[10], sos[11]};
    float *ra = rest, *rb = rest + DECIMATE;
    int64_t i = 0;
    if (*rest_n > 0) {
        for (; i < n && *rest_n < DECIMATE; i++, (*rest_n)++) {
            ra[*rest_n] = l[i];
            rb[*rest_n] = r[i];
        }
        if (*rest_n < DECIMATE)
            return seconds;
        low_end(ra, rb, 1, &c, zi, low);
        *rest_n = 0;
    }
    int64_t groups = (n - i) / DECIMATE;
    low_end(l + i, r + i, groups, &c, zi, low);
    for (i += groups * DECIMATE; i < n; i++, (*rest_n)++) {
        ra[*rest_n] = l[i];
        rb[*rest_n] = r[i];
    }
    return seconds;
}
