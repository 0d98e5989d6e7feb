/* The CPU fast sampler's small per-pixel work, fused (notebook 03's appendix; compiled and loaded by fused.py).

   Between its small matrix products a pixel step runs elementwise work on a handful of rows: a gated block's
   gate x + a * sigmoid(b), then concat_elu [elu(x), elu(-x)] for the next convolution (four PyTorch calls per
   block, each a few microseconds of dispatch for a few microseconds of arithmetic), and the pixel draw (about
   forty small calls). Here each is one loop: store_rows, gate_rows, draw_pixels.

   Every function takes one array of int64 arguments (one ctypes argument: cheaper to call). A tensor
   argument is its address and its strides (in floats) over the batch (and the position); values of one row
   are contiguous. Rows are copied to a small local buffer first, so an output may overlap an input (e.g. x
   stored in the first half of its own concat_elu row).

   Floats only. The tails compute exp here (Cephes' expf: x = n ln 2 + r, a polynomial in r, 2^n from the
   exponent bits) so that the compiler can vectorize the loops: within a few units in the last place of
   PyTorch's (the tests compare both); NaN stays NaN. The draw leaves exp and tanh to PyTorch and repeats
   draw_with_noise's other float operations in its order (compiled without fused multiply-adds), so it
   draws the same pixels. */

#include <stdint.h>
#include <string.h>

#define MAX_CHANNELS 4096  /* the longest row a local buffer holds; fused.py checks it */

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

/* The pixel draw (likelihood.draw_with_noise) after its transcendental parts: PyTorch has computed every
   mixture component's scale exp(max(log_scale, min)) and coefficient tanh(c) (elementwise: the same numbers
   as for the chosen one alone); this picks the component and does the rest in the same float operations, in
   the same order, so the pixel is the one draw_with_noise draws.

   to_grid: clamp to [-1, 1], then round((x + 1) * 127.5) / 127.5 - 1 (round half to even, like torch.round). */
static inline float to_grid(float x) {
    x = x < -1.0f ? -1.0f : x;
    x = x > 1.0f ? 1.0f : x;
    return __builtin_rintf((x + 1.0f) * 127.5f) / 127.5f - 1.0f;
}

/* a = [batch, mixtures, channels, params, params_sb, scales, scales_sb, coeffs, coeffs_sb, gumbel, gumbel_sb,
        logistic, logistic_sb, out, out_sb, temperature]: per image, params (logits, then per colour mean,
   log-scale(, coefficient) rows of `mixtures` each), scales and coeffs (channels rows of `mixtures`), its noise,
   and where its pixel goes (channels values); temperature is the address of one float. */
void draw_pixels(const int64_t *a) {
    int64_t batch = a[0], m = a[1], channels = a[2], per = channels == 1 ? 2 : 3;
    float t = *(const float *)a[15];
    for (int64_t i = 0; i < batch; i++) {
        const float *p = (const float *)a[3] + i * a[4], *scale = (const float *)a[5] + i * a[6];
        const float *coeff = (const float *)a[7] + i * a[8], *gumbel = (const float *)a[9] + i * a[10];
        const float *logistic = (const float *)a[11] + i * a[12];
        float *out = (float *)a[13] + i * a[14];
        int64_t k = 0;  /* argmax of logits / t + gumbel: the first largest, a NaN counts as largest (torch.argmax) */
        float best = p[0] / t + gumbel[0];
        for (int64_t j = 1; j < m; j++) {
            float v = p[j] / t + gumbel[j];
            if ((v > best) || (v != v && best == best)) {
                best = v;
                k = j;
            }
        }
        float mu[3], noise[3];
        for (int64_t c = 0; c < channels; c++) {
            mu[c] = p[(1 + c * per) * m + k];
            noise[c] = scale[c * m + k] * t * logistic[c];
        }
        if (channels == 1) {
            out[0] = to_grid(mu[0] + noise[0]);
            continue;
        }
        float c_rg = coeff[k], c_rb = coeff[m + k], c_gb = coeff[2 * m + k];
        float r = to_grid(mu[0] + noise[0]);
        float g = to_grid(mu[1] + c_rg * r + noise[1]);
        float b = to_grid(mu[2] + c_rb * r + c_gb * g + noise[2]);
        out[0] = r;
        out[1] = g;
        out[2] = b;
    }
}
