/* Fused colour kernels for colorize-gan (see runtime/fastcolor.py, which builds and loads this file).
 *
 * finish_rows: for output rows [row0, row1): bilinear ab upsampling from the network's padded ab map
 * (index/weight tables precomputed in Python), saturation, Lab -> XYZ (D65) -> linear sRGB ->
 * sRGB, clipped, written as uint8 (LUT gamma) or float32 (exact curve). One pass, no temporaries
 * beyond one interpolated source row pair, so a 12 MP frame stays in cache-friendly streams.
 * rgb8_to_l: 8-bit sRGB -> CIE L via a 256-entry linearisation table.
 * The constants match runtime/color.py (scikit-image's matrix and white point).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define XN 0.95047f
#define ZN 1.08883f
#define T0 (6.0f / 29.0f)
#define LIN_SLOPE (3.0f * (6.0f / 29.0f) * (6.0f / 29.0f))

/* inv(M_xyz_from_rgb) computed in double precision (runtime/color.py _RGB_FROM_XYZ) */
static const float M[9] = {
    3.24048134f, -1.53715152f, -0.49853633f,
    -0.96925495f, 1.87599f, 0.04155593f,
    0.05564664f, -0.20404134f, 1.05731107f,
};

static inline float finv(float t) { return t > T0 ? t * t * t : (t - 4.0f / 29.0f) * LIN_SLOPE; }

static inline float srgb_exact(float v) {
    if (v <= 0.0f) return 0.0f;
    if (v >= 1.0f) return 1.0f;
    return v <= 0.0031308f ? v * 12.92f : 1.055f * powf(v, 1.0f / 2.4f) - 0.055f;
}

static inline void lab_to_u8(float fy, float Yl, float a, float b, const uint8_t *gamma_lut, uint8_t *o) {
    const float X = XN * finv(fy + a * (1.0f / 500.0f)), Z = ZN * finv(fy - b * (1.0f / 200.0f));
    for (int c = 0; c < 3; c++) {
        float v = M[3 * c] * X + M[3 * c + 1] * Yl + M[3 * c + 2] * Z;
        v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        o[c] = gamma_lut[(int)(v * 65535.0f + 0.5f)];
    }
}

/* Vertical pass at network width (cheap): the two source rows blended for output row y, times sat. */
static inline void blend_rows(const float *A, const float *B, int nw, int ya, int yb, float w, float sat,
                              float *row_a, float *row_b) {
    const float *a0 = A + (size_t)ya * nw, *a1 = A + (size_t)yb * nw;
    const float *b0 = B + (size_t)ya * nw, *b1 = B + (size_t)yb * nw;
    for (int i = 0; i < nw; i++) {
        row_a[i] = (a0[i] + w * (a1[i] - a0[i])) * sat;
        row_b[i] = (b0[i] + w * (b1[i] - b0[i])) * sat;
    }
}

/* gamma_lut: 65536 uint8 entries, gamma_lut[i] = round(255 * srgb(i / 65535)). */
void finish_rows(const float *L, int W, const float *ab, int nh, int nw,
                 const int32_t *y0, const int32_t *y1, const float *wy,
                 const int32_t *x0, const int32_t *x1, const float *wx,
                 float sat, const uint8_t *gamma_lut, uint8_t *out_u8, float *out_f32,
                 int row0, int row1) {
    const float *A = ab, *B = ab + (size_t)nh * nw;
    float *row_a = malloc(sizeof(float) * nw * 2);
    if (!row_a) return;
    float *row_b = row_a + nw;
    for (int y = row0; y < row1; y++) {
        blend_rows(A, B, nw, y0[y], y1[y], wy[y], sat, row_a, row_b);
        const float *Lr = L + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            const int i0 = x0[x], i1 = x1[x];
            const float w = wx[x];
            const float a = row_a[i0] + w * (row_a[i1] - row_a[i0]);
            const float b = row_b[i0] + w * (row_b[i1] - row_b[i0]);
            const float fy = (Lr[x] + 16.0f) * (1.0f / 116.0f);
            if (out_u8) {
                lab_to_u8(fy, finv(fy), a, b, gamma_lut, out_u8 + ((size_t)y * W + x) * 3);
            } else {
                const float X = XN * finv(fy + a * (1.0f / 500.0f)), Y = finv(fy), Z = ZN * finv(fy - b * (1.0f / 200.0f));
                float *o = out_f32 + ((size_t)y * W + x) * 3;
                for (int c = 0; c < 3; c++) o[c] = srgb_exact(M[3 * c] * X + M[3 * c + 1] * Y + M[3 * c + 2] * Z);
            }
        }
    }
    free(row_a);
}

/* As finish_rows with uint8 output, but reading the 8-bit source pixels instead of a float L plane:
 * stride 1 = grey (fy and Y from 256-entry tables), 3 or 4 = RGB(A) (Y from the linearisation
 * table, fy from a 65536-entry table indexed by quantised Y). Saves the full-resolution L pass. */
void finish_src_rows(const uint8_t *src, int stride, int W, const float *ab, int nh, int nw,
                     const int32_t *y0, const int32_t *y1, const float *wy,
                     const int32_t *x0, const int32_t *x1, const float *wx,
                     float sat, const float *lin, const float *fy_grey, const float *fy_of_y,
                     const uint8_t *gamma_lut, uint8_t *out, int row0, int row1) {
    const float *A = ab, *B = ab + (size_t)nh * nw;
    float *row_a = malloc(sizeof(float) * nw * 2);
    if (!row_a) return;
    float *row_b = row_a + nw;
    for (int y = row0; y < row1; y++) {
        blend_rows(A, B, nw, y0[y], y1[y], wy[y], sat, row_a, row_b);
        const uint8_t *s = src + (size_t)y * W * stride;
        uint8_t *o = out + (size_t)y * W * 3;
        for (int x = 0; x < W; x++, s += stride, o += 3) {
            const int i0 = x0[x], i1 = x1[x];
            const float w = wx[x];
            const float a = row_a[i0] + w * (row_a[i1] - row_a[i0]);
            const float b = row_b[i0] + w * (row_b[i1] - row_b[i0]);
            float fy, Yl;
            if (stride == 1) {
                fy = fy_grey[s[0]];
                Yl = lin[s[0]];
            } else {
                Yl = 0.212671f * lin[s[0]] + 0.715160f * lin[s[1]] + 0.072169f * lin[s[2]];
                fy = fy_of_y[(int)((Yl < 1.0f ? Yl : 1.0f) * 65535.0f + 0.5f)];
            }
            lab_to_u8(fy, Yl, a, b, gamma_lut, o);
        }
    }
    free(row_a);
}

/* 8-bit sRGB pixels (stride 3 or 4 bytes) -> L in [0, 100]. lin: 256-entry sRGB -> linear table. */
void rgb8_to_l(const uint8_t *rgb, long n, int stride, const float *lin, float *out) {
    const float eps = T0 * T0 * T0;
    for (long i = 0; i < n; i++) {
        const uint8_t *p = rgb + i * stride;
        const float Y = 0.212671f * lin[p[0]] + 0.715160f * lin[p[1]] + 0.072169f * lin[p[2]];
        out[i] = Y > eps ? 116.0f * cbrtf(Y) - 16.0f : Y * (116.0f / LIN_SLOPE);
    }
}

/* uint8 -> float32 through a 256-entry table (grey 8-bit -> L). */
void lut8_to_f32(const uint8_t *src, long n, const float *lut, float *out) {
    for (long i = 0; i < n; i++) out[i] = lut[src[i]];
}
