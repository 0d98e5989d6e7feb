/* The fast sampler's elementwise tails, fused (notebook 03's appendix; loaded by fused_tail.py).

   After each matrix product the CPU sampler runs a few elementwise operations on a handful of rows:
   a gated block's gate x + a * sigmoid(b), then concat_elu [elu(x), elu(-x)] for the next convolution.
   In PyTorch that is four calls per block and pixel (glu, add, the signs product, elu_), each a few
   microseconds of dispatch for a few microseconds of arithmetic. Here each tail is one loop.

   Every function takes one array of int64 arguments (one ctypes argument: cheaper to call). A tensor
   argument is three numbers: its address and its strides (in floats) over the batch and the position;
   values of one row are contiguous. Rows are copied to a small local buffer first, so an output may
   overlap an input (e.g. x stored in the first half of its own concat_elu row).

   Floats only. exp is computed here (Cephes' expf: x = n ln 2 + r, a polynomial in r, 2^n from the
   exponent bits) so that the compiler can vectorize the loops; it is within 2 units in the last place
   of PyTorch's, and the tests compare both. NaN stays NaN. */

#include <stdint.h>
#include <string.h>

#define MAX_CHANNELS 1024

static inline float exp_f(float x) {
    x = x < -87.0f ? -87.0f : x;  /* comparisons, not fminf: a NaN passes through */
    x = x > 88.0f ? 88.0f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f;  /* ln 2 in two parts, so that r is exact */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;  /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* elu(x) = x for x > 0, exp(x) - 1 otherwise; near 0 a Taylor polynomial, where exp(x) - 1 would lose digits.
   Both sides are computed and one is chosen (no branch: the loop vectorizes). */
static inline float elu_f(float x) {
    float m = x > 0.0f ? 0.0f : x;  /* NaN stays NaN */
    float far = exp_f(m) - 1.0f;
    float near = 1.0f / 5040.0f;
    near = near * m + 1.0f / 720.0f;
    near = near * m + 1.0f / 120.0f;
    near = near * m + 1.0f / 24.0f;
    near = near * m + 1.0f / 6.0f;
    near = near * m + 0.5f;
    near = near * m * m + m;
    float negative = m > -0.35f ? near : far;
    return x > 0.0f ? x : negative;
}

static void concat_elu_row(const float *restrict v, float *restrict ce, int64_t c) {
    for (int64_t j = 0; j < c; j++) {
        ce[j] = elu_f(v[j]);
        ce[c + j] = elu_f(-v[j]);
    }
}

/* a = [batch, positions, channels, x, x_sb, x_sp, raw, raw_sb, raw_sp, ce, ce_sb, ce_sp]:
   raw = x (when raw is not 0) and ce = [elu(x), elu(-x)] (when ce is not 0). */
void store_rows(const int64_t *a) {
    int64_t batch = a[0], positions = a[1], c = a[2];
    const float *x = (const float *)a[3];
    float *raw = (float *)a[6], *ce = (float *)a[9];
    float v[MAX_CHANNELS];
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t p = 0; p < positions; p++) {
            memcpy(v, x + b * a[4] + p * a[5], c * sizeof(float));
            if (raw) memcpy(raw + b * a[7] + p * a[8], v, c * sizeof(float));
            if (ce) concat_elu_row(v, ce + b * a[10] + p * a[11], c);
        }
    }
}

/* a = [batch, positions, channels, ab, ab_sb, ab_sp, res, res_sb, res_sp, raw, raw_sb, raw_sp, ce, ce_sb, ce_sp]:
   x = res + a * sigmoid(b), (a, b) the two halves of an ab row (2 * channels); raw = x and ce = concat_elu(x)
   where given (not 0). sigmoid(b) = 1 / (1 + exp(-b)), as PyTorch's glu computes it. */
void gate_rows(const int64_t *a) {
    int64_t batch = a[0], positions = a[1], c = a[2];
    const float *ab = (const float *)a[3], *res = (const float *)a[6];
    float *raw = (float *)a[9], *ce = (float *)a[12];
    float v[MAX_CHANNELS];
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t p = 0; p < positions; p++) {
            const float *first = ab + b * a[4] + p * a[5], *second = first + c, *x = res + b * a[7] + p * a[8];
            for (int64_t j = 0; j < c; j++) {
                float gate = 1.0f / (1.0f + exp_f(-second[j]));
                float gated = first[j] * gate;
                v[j] = x[j] + gated;
            }
            if (raw) memcpy(raw + b * a[10] + p * a[11], v, c * sizeof(float));
            if (ce) concat_elu_row(v, ce + b * a[13] + p * a[14], c);
        }
    }
}
