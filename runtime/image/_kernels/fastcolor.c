/* Fused colour kernels for colorize-gan (see runtime/fastcolor.py, which builds and loads this file).
 *
 * finish_rows: for output rows [row0, row1): bilinear ab upsampling from the network's padded ab map
 * (index/weight tables precomputed in Python), saturation, Lab -> XYZ (D65) -> linear sRGB ->
 * sRGB, clipped, written as uint8 (LUT gamma) or float32 (exact curve).
 * finish_src_rows: the same with uint8 output, reading 8-bit grey/RGB(A) source pixels, written as RGB or RGBX.
 * rgb8_to_l: 8-bit sRGB -> CIE L via a 256-entry linearisation table.
 * The constants match runtime/color.py (scikit-image's matrix and white point).
 *
 * Layout of the uint8 paths (for speed): each output row is processed in tiles of TILE pixels:
 * (1) the horizontally interpolated, pre-scaled a/500 and b/200 for the tile go into contiguous
 * arrays; (2) a branch-free loop (vectorised; AVX2 clone where the CPU has it) computes the clipped
 * linear R, G, B and their gamma table indices; (3) a plain loop reads the gamma table and writes
 * interleaved bytes. The gamma table has GAMMA_N uint8 entries indexed by round(v * (GAMMA_N - 1)).
 * (A 4096-16384 entry table that fits L1 measured no faster here and adds up to 1 level of error
 * on 0.4-3 % of values, so the 65536-entry table stays.)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define XN 0.95047f
#define ZN 1.08883f
#define T0 (6.0f / 29.0f)
#define LIN_SLOPE (3.0f * (6.0f / 29.0f) * (6.0f / 29.0f))
#define GAMMA_N 65536
#define TILE 512

/* inv(M_xyz_from_rgb) computed in double precision (runtime/color.py _RGB_FROM_XYZ) */
static const float M[9] = {
    3.24048134f, -1.53715152f, -0.49853633f,
    -0.96925495f, 1.87599f, 0.04155593f,
    0.05564664f, -0.20404134f, 1.05731107f,
};

/* On x86-64 with GCC and glibc, the pixel maths is also compiled for x86-64-v3 (AVX2 + FMA) and picked
 * at load time by the CPU it runs on (ifunc), so the cached .so stays portable between machines. */
#if !defined(FASTCOLOR_NO_CLONES) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__GLIBC__)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default"))) __attribute__((noinline))
#else
#define CLONES
#endif

/* Both sides computed, then selected: no branch, so the pixel loops vectorise. */
static inline float finv(float t) {
    const float cube = t * t * t, lin = (t - 4.0f / 29.0f) * LIN_SLOPE;
    return t > T0 ? cube : lin;
}

/* NaN -> 0 (the first comparison is false), so a table index is always in range. */
static inline float clamp01(float v) {
    v = v > 0.0f ? v : 0.0f;
    return v < 1.0f ? v : 1.0f;
}

static inline float srgb_exact(float v) {
    if (v <= 0.0f) return 0.0f;
    if (v >= 1.0f) return 1.0f;
    return v <= 0.0031308f ? v * 12.92f : 1.055f * powf(v, 1.0f / 2.4f) - 0.055f;
}

/* Vertical pass at network width (cheap): the two source rows blended for output row y, scaled. */
static inline void blend_rows(const float *A, const float *B, int nw, int ya, int yb, float w, float sa, float sb,
                              float *row_a, float *row_b) {
    const float *a0 = A + (size_t)ya * nw, *a1 = A + (size_t)yb * nw;
    const float *b0 = B + (size_t)ya * nw, *b1 = B + (size_t)yb * nw;
    for (int i = 0; i < nw; i++) {
        row_a[i] = (a0[i] + w * (a1[i] - a0[i])) * sa;
        row_b[i] = (b0[i] + w * (b1[i] - b0[i])) * sb;
    }
}

/* Horizontal pass for pixels [x, x + n) of one row into contiguous arrays. x0 is non-decreasing (an
 * upsample), so it is walked in runs sharing one source pair: the inner loop is a straight,
 * vectorisable a0 + w * da (the same arithmetic as the per-pixel formula). */
static inline void interp_tile(const float *row_a, const float *row_b, const int32_t *x0, const int32_t *x1,
                               const float *wx, int x, int n, float *restrict ta, float *restrict tb) {
    const int32_t *xi = x0 + x;
    const float *w = wx + x;
    for (int k = 0; k < n;) {
        const int i0 = xi[k], i1 = x1[x + k];
        int e = k + 1;
        while (e < n && xi[e] == i0) e++;
        const float a0 = row_a[i0], da = row_a[i1] - a0, b0 = row_b[i0], db = row_b[i1] - b0;
        for (int j = k; j < e; j++) {
            ta[j] = a0 + w[j] * da;
            tb[j] = b0 + w[j] * db;
        }
        k = e;
    }
}

/* fy, Y (per pixel), ax = a/500, bz = b/200 -> gamma table indices of R, G, B. Branch-free. */
CLONES static void lab_tile_idx(int n, const float *restrict fy, const float *restrict Yl, const float *restrict ax,
                                const float *restrict bz, int32_t *restrict ir, int32_t *restrict ig,
                                int32_t *restrict ib) {
    const float s = (float)(GAMMA_N - 1);
    for (int k = 0; k < n; k++) {
        const float X = XN * finv(fy[k] + ax[k]), Y = Yl[k], Z = ZN * finv(fy[k] - bz[k]);
        const float r = clamp01(M[0] * X + M[1] * Y + M[2] * Z);
        const float g = clamp01(M[3] * X + M[4] * Y + M[5] * Z);
        const float b = clamp01(M[6] * X + M[7] * Y + M[8] * Z);
        ir[k] = (int32_t)(r * s + 0.5f);
        ig[k] = (int32_t)(g * s + 0.5f);
        ib[k] = (int32_t)(b * s + 0.5f);
    }
}

/* Grey source: fy and Y read from 256-entry tables inside the same loop (gathers on AVX2). */
CLONES static void grey_tile_idx(int n, const uint8_t *restrict src, const float *restrict fy_grey,
                                 const float *restrict lin, const float *restrict ax, const float *restrict bz,
                                 int32_t *restrict ir, int32_t *restrict ig, int32_t *restrict ib) {
    const float s = (float)(GAMMA_N - 1);
    for (int k = 0; k < n; k++) {
        const float fy = fy_grey[src[k]], Y = lin[src[k]];
        const float X = XN * finv(fy + ax[k]), Z = ZN * finv(fy - bz[k]);
        const float r = clamp01(M[0] * X + M[1] * Y + M[2] * Z);
        const float g = clamp01(M[3] * X + M[4] * Y + M[5] * Z);
        const float b = clamp01(M[6] * X + M[7] * Y + M[8] * Z);
        ir[k] = (int32_t)(r * s + 0.5f);
        ig[k] = (int32_t)(g * s + 0.5f);
        ib[k] = (int32_t)(b * s + 0.5f);
    }
}

/* ostride 3 = packed RGB; 4 = RGBX (the fourth byte 255), the layout Pillow keeps RGB images in, so the
 * encoder reads the buffer as it is instead of repacking every pixel. */
static inline void store_tile(int n, const int32_t *ir, const int32_t *ig, const int32_t *ib,
                              const uint8_t *gamma_lut, uint8_t *o, int ostride) {
    if (ostride == 4) {
        for (int k = 0; k < n; k++, o += 4) {
            o[0] = gamma_lut[ir[k]];
            o[1] = gamma_lut[ig[k]];
            o[2] = gamma_lut[ib[k]];
            o[3] = 255;
        }
        return;
    }
    for (int k = 0; k < n; k++, o += 3) {
        o[0] = gamma_lut[ir[k]];
        o[1] = gamma_lut[ig[k]];
        o[2] = gamma_lut[ib[k]];
    }
}

typedef struct {
    float ta[TILE], tb[TILE], fy[TILE], yl[TILE];
    int32_t ir[TILE], ig[TILE], ib[TILE];
} tile_buf;

/* gamma_lut: GAMMA_N uint8 entries, gamma_lut[i] = round(255 * srgb(i / (GAMMA_N - 1))). */
void finish_rows(const float *L, int W, const float *ab, int nh, int nw,
                 const int32_t *y0, const int32_t *y1, const float *wy,
                 const int32_t *x0, const int32_t *x1, const float *wx,
                 float sat, const uint8_t *gamma_lut, uint8_t *out_u8, float *out_f32,
                 int row0, int row1) {
    const float *A = ab, *B = ab + (size_t)nh * nw;
    float *row_a = malloc(sizeof(float) * nw * 2);
    tile_buf *t = malloc(sizeof(tile_buf));
    if (!row_a || !t) {
        free(row_a);
        free(t);
        return;
    }
    float *row_b = row_a + nw;
    for (int y = row0; y < row1; y++) {
        blend_rows(A, B, nw, y0[y], y1[y], wy[y], sat * (1.0f / 500.0f), sat * (1.0f / 200.0f), row_a, row_b);
        const float *Lr = L + (size_t)y * W;
        for (int x = 0; x < W; x += TILE) {
            const int n = W - x < TILE ? W - x : TILE;
            interp_tile(row_a, row_b, x0, x1, wx, x, n, t->ta, t->tb);
            for (int k = 0; k < n; k++) {
                const float fy = (Lr[x + k] + 16.0f) * (1.0f / 116.0f);
                t->fy[k] = fy;
                t->yl[k] = finv(fy);
            }
            if (out_u8) {
                lab_tile_idx(n, t->fy, t->yl, t->ta, t->tb, t->ir, t->ig, t->ib);
                store_tile(n, t->ir, t->ig, t->ib, gamma_lut, out_u8 + ((size_t)y * W + x) * 3, 3);
            } else {
                float *o = out_f32 + ((size_t)y * W + x) * 3;
                for (int k = 0; k < n; k++, o += 3) {
                    const float X = XN * finv(t->fy[k] + t->ta[k]), Y = t->yl[k], Z = ZN * finv(t->fy[k] - t->tb[k]);
                    for (int c = 0; c < 3; c++) o[c] = srgb_exact(M[3 * c] * X + M[3 * c + 1] * Y + M[3 * c + 2] * Z);
                }
            }
        }
    }
    free(t);
    free(row_a);
}

/* As finish_rows with uint8 output, but reading the 8-bit source pixels instead of a float L plane:
 * stride 1 = grey (fy and Y from 256-entry tables), 3 or 4 = RGB(A) (Y from the linearisation
 * table, fy from a 65536-entry table indexed by quantised Y). Saves the full-resolution L pass. */
void finish_src_rows(const uint8_t *src, int stride, int W, const float *ab, int nh, int nw,
                     const int32_t *y0, const int32_t *y1, const float *wy,
                     const int32_t *x0, const int32_t *x1, const float *wx,
                     float sat, const float *lin, const float *fy_grey, const float *fy_of_y,
                     const uint8_t *gamma_lut, uint8_t *out, int ostride, int row0, int row1) {
    const float *A = ab, *B = ab + (size_t)nh * nw;
    float *row_a = malloc(sizeof(float) * nw * 2);
    tile_buf *t = malloc(sizeof(tile_buf));
    if (!row_a || !t) {
        free(row_a);
        free(t);
        return;
    }
    float *row_b = row_a + nw;
    for (int y = row0; y < row1; y++) {
        blend_rows(A, B, nw, y0[y], y1[y], wy[y], sat * (1.0f / 500.0f), sat * (1.0f / 200.0f), row_a, row_b);
        const uint8_t *srow = src + (size_t)y * W * stride;
        for (int x = 0; x < W; x += TILE) {
            const int n = W - x < TILE ? W - x : TILE;
            interp_tile(row_a, row_b, x0, x1, wx, x, n, t->ta, t->tb);
            const uint8_t *s = srow + (size_t)x * stride;
            if (stride == 1) {
                grey_tile_idx(n, s, fy_grey, lin, t->ta, t->tb, t->ir, t->ig, t->ib);
            } else {
                for (int k = 0; k < n; k++, s += stride) {
                    const float Yl = 0.212671f * lin[s[0]] + 0.715160f * lin[s[1]] + 0.072169f * lin[s[2]];
                    t->yl[k] = Yl;
                    t->fy[k] = fy_of_y[(int)((Yl < 1.0f ? Yl : 1.0f) * 65535.0f + 0.5f)];
                }
                lab_tile_idx(n, t->fy, t->yl, t->ta, t->tb, t->ir, t->ig, t->ib);
            }
            store_tile(n, t->ir, t->ig, t->ib, gamma_lut, out + ((size_t)y * W + x) * ostride, ostride);
        }
    }
    free(t);
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
