/* Sum of squares of float32 samples in float64 (the RMS of dynamics.py).
 *
 * Plain C99, no libc, called through ctypes (native.py). float64 because a
 * float32 square overflows above 1.8e19 and underflows below 1e-23, and float
 * files hold both. Eight partial sums: independent additions that the
 * floating-point units (and the vectoriser) can overlap, where one running sum
 * would wait four cycles for every sample.
 */

#include <stdint.h>

#define LANES 8

double soundcheck_sum_squares(const float *x, int64_t n)
{
    double part[LANES] = {0.0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; ++k) {
            double v = (double)x[i + k];
            part[k] += v * v;
        }
    double sum = 0.0;
    for (; i < n; ++i) {
        double v = (double)x[i];
        sum += v * v;
    }
    for (int k = 0; k < LANES; ++k)
        sum += part[k];
    return sum;
}
