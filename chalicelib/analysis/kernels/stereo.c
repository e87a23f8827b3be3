/* Sums for the stereo image of a pair of float32 rows, called from stereo_series.py
 * through ctypes. Everything is summed in double (a float32 square overflows above
 * 1.8e19 and underflows below 1e-23).
 *
 * Per second: LL, RR and LR over each whole `period` frames. Low end: the mean of
 * each 8 samples (a boxcar, pairwise as numpy summed it), then a low-pass given as
 * second-order sections (scipy's sos layout: b0 b1 b2 a0 a1 a2, a0 = 1) in direct
 * form II transposed as scipy's sosfilt, then LL, RR and LR of what passes. The
 * unfinished second, the last incomplete group of 8 and the filter state are
 * carried between calls in the caller's arrays.
 */
#include <stdint.h>

#define DECIMATE 8
#define LANES 4 /* independent partial sums: the compiler may vectorise them */

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

static double boxcar(const double *g)
{
    return (((g[0] + g[1]) + (g[2] + g[3])) + ((g[4] + g[5]) + (g[6] + g[7]))) * (1.0 / DECIMATE);
}

/* One reduced sample of each channel through the sections; adds the products. */
static void low_pass(double a, double b, const double *sos, int64_t sections, double *zi,
                     double *low)
{
    for (int64_t s = 0; s < sections; s++) {
        const double *c = sos + 6 * s;
        double *za = zi + 4 * s, *zb = za + 2;
        double ya = c[0] * a + za[0];
        double yb = c[0] * b + zb[0];
        za[0] = c[1] * a - c[4] * ya + za[1];
        zb[0] = c[1] * b - c[4] * yb + zb[1];
        za[1] = c[2] * a - c[5] * ya;
        zb[1] = c[2] * b - c[5] * yb;
        a = ya;
        b = yb;
    }
    low[0] += a * a;
    low[1] += b * b;
    low[2] += a * b;
}

/* One block of the pair: l, r float32 [0 .. n).
 *
 * filled: frames of the unfinished second so far, second[3] its sums; each second
 * completed here has its sums written to finished[3 k ..] (room for n / period + 1
 * rows) and the next one starts from zero. Returns the count of completed seconds,
 * -1 if DECIMATE is not `decimate`.
 *
 * sos (sections, 6); zi (sections, 2 channels, 2) the filter state; rest (2, 8) and
 * *rest_n the samples of an incomplete group of 8; low[3] the sums of the
 * low-passed pair. */
int64_t sc_stereo_block(const float *l, const float *r, int64_t n, int64_t period,
                        int64_t *filled, double *second, double *finished, int64_t decimate,
                        const double *sos, int64_t sections, double *zi, double *rest,
                        int64_t *rest_n, double *low)
{
    if (decimate != DECIMATE || period < 1)
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
    /* Low end at 1/8 of the rate. */
    int64_t i = 0;
    double *ra = rest, *rb = rest + DECIMATE;
    if (*rest_n > 0) {
        for (; i < n && *rest_n < DECIMATE; i++, (*rest_n)++) {
            ra[*rest_n] = l[i];
            rb[*rest_n] = r[i];
        }
        if (*rest_n < DECIMATE)
            return seconds;
        low_pass(boxcar(ra), boxcar(rb), sos, sections, zi, low);
        *rest_n = 0;
    }
    if (sections == 2) { /* the 4th-order filter, unrolled: its state in registers */
        const double b0 = sos[0], b1 = sos[1], b2 = sos[2], a1 = sos[4], a2 = sos[5];
        const double d0 = sos[6], d1 = sos[7], d2 = sos[8], e1 = sos[10], e2 = sos[11];
        double za0 = zi[0], za1 = zi[1], zb0 = zi[2], zb1 = zi[3];
        double wa0 = zi[4], wa1 = zi[5], wb0 = zi[6], wb1 = zi[7];
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
        for (; i + DECIMATE <= n; i += DECIMATE) {
            const float *p = l + i, *q = r + i;
            double a = ((((double)p[0] + p[1]) + ((double)p[2] + p[3]))
                        + (((double)p[4] + p[5]) + ((double)p[6] + p[7])))
                       * (1.0 / DECIMATE);
            double b = ((((double)q[0] + q[1]) + ((double)q[2] + q[3]))
                        + (((double)q[4] + q[5]) + ((double)q[6] + q[7])))
                       * (1.0 / DECIMATE);
            /* y = b0 x + z0; z0 = b1 x - a1 y + z1; z1 = b2 x - a2 y (the products
             * of x first: only a1 y waits for y) */
            double ya = b0 * a + za0, yb = b0 * b + zb0;
            za0 = (b1 * a + za1) - a1 * ya;
            zb0 = (b1 * b + zb1) - a1 * yb;
            za1 = b2 * a - a2 * ya;
            zb1 = b2 * b - a2 * yb;
            double ua = d0 * ya + wa0, ub = d0 * yb + wb0;
            wa0 = (d1 * ya + wa1) - e1 * ua;
            wb0 = (d1 * yb + wb1) - e1 * ub;
            wa1 = d2 * ya - e2 * ua;
            wb1 = d2 * yb - e2 * ub;
            s0 += ua * ua;
            s1 += ub * ub;
            s2 += ua * ub;
        }
        zi[0] = za0, zi[1] = za1, zi[2] = zb0, zi[3] = zb1;
        zi[4] = wa0, zi[5] = wa1, zi[6] = wb0, zi[7] = wb1;
        low[0] += s0;
        low[1] += s1;
        low[2] += s2;
    }
    for (; i + DECIMATE <= n; i += DECIMATE) {
        double ga[DECIMATE], gb[DECIMATE];
        for (int j = 0; j < DECIMATE; j++) {
            ga[j] = l[i + j];
            gb[j] = r[i + j];
        }
        low_pass(boxcar(ga), boxcar(gb), sos, sections, zi, low);
    }
    for (; i < n; i++, (*rest_n)++) {
        ra[*rest_n] = l[i];
        rb[*rest_n] = r[i];
    }
    return seconds;
}
