/* Block preparation (blockwise.py): a decoded block of interleaved float32 frames
 * (frames, channels) turned channel-major (channels, frames), with the minimum and
 * maximum of every `sub` frames of each channel, in one pass over the samples.
 *
 * Plain C99, no libc, called through ctypes (native.py). A sub-block holding a NaN
 * gets NaN for its minimum and maximum (numpy's min/max propagate NaN the same
 * way); infinities are ordinary values. Per channel, LANES running minima and
 * maxima over consecutive frames: element-wise, so the vectoriser turns each
 * into one SIMD min/max, where a single running value would be a serial chain.
 */

#include <stdint.h>

#define LANES 32 /* 8 is fully unrolled by gcc 12 before the vectoriser sees it: scalar */

/* Extremes of one channel's sub-block, x[0 .. m) contiguous, m >= 1. */
static void extremes(const float *x, int64_t m, float *low, float *high)
{
    float lo[LANES], hi[LANES], odd[LANES];
    for (int k = 0; k < LANES; ++k) {
        lo[k] = x[0];
        hi[k] = x[0];
        odd[k] = 0.0f;
    }
    int64_t i = 0;
    for (; i + LANES <= m; i += LANES)
        for (int k = 0; k < LANES; ++k) {
            float v = x[i + k];
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = v > hi[k] ? v : hi[k];
            odd[k] += v * 0.0f; /* NaN from a NaN or an infinity on */
        }
    float l = lo[0], h = hi[0], o = 0.0f;
    for (int k = 0; k < LANES; ++k) {
        l = lo[k] < l ? lo[k] : l;
        h = hi[k] > h ? hi[k] : h;
        o += odd[k];
    }
    for (; i < m; ++i) {
        float v = x[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
        o += v * 0.0f;
    }
    if (o != o) { /* a NaN or an infinity: again, exactly, in order */
        l = x[0];
        h = x[0];
        for (int64_t j = 0; j < m; ++j) {
            float v = x[j];
            if (v != v) {
                l = v;
                h = v;
                break;
            }
            l = v < l ? v : l;
            h = v > h ? v : h;
        }
    }
    *low = l;
    *high = h;
}

/* in: (frames, channels) interleaved; out: (channels, frames); lows, highs:
 * (channels, ceil(frames / sub)). Returns 0, or -1 for sizes it cannot take. */
int64_t soundcheck_block_prep(const float *in, int64_t channels, int64_t frames, int64_t sub,
                              float *out, float *lows, float *highs)
{
    if (channels < 1 || frames < 0 || sub < 1)
        return -1;
    int64_t count = (frames + sub - 1) / sub;
    for (int64_t s = 0; s < count; ++s) {
        int64_t start = s * sub;
        int64_t end = frames - start < sub ? frames : start + sub;
        if (channels == 1) {
            for (int64_t i = start; i < end; ++i)
                out[i] = in[i];
        } else if (channels == 2) {
            float *left = out, *right = out + frames;
            for (int64_t i = start; i < end; ++i) {
                left[i] = in[2 * i];
                right[i] = in[2 * i + 1];
            }
        } else {
            for (int64_t i = start; i < end; ++i)
                for (int64_t c = 0; c < channels; ++c)
                    out[c * frames + i] = in[i * channels + c];
        }
        /* The sub-block was just written: its extremes read it from the L1 cache. */
        for (int64_t c = 0; c < channels; ++c)
            extremes(out + c * frames + start, end - start, lows + c * count + s,
                     highs + c * count + s);
    }
    return 0;
}
