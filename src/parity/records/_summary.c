/* One pass over a tensor's memory for the capture hooks (parity/records/native.py).
 *
 * The hash is the one stats.content_hash defines: the data read as little-endian
 * uint32 words in blocks of 4096, each block reduced to sum(word * key) mod 2^32.
 * Unsigned arithmetic wraps mod 2^32 in C, so every compiler and machine gives the
 * numpy einsum's bytes. The float32 kernel also takes min, max, sum and sum of
 * squares in the same pass (accumulated per block in float32 lanes, across blocks in
 * double). Reassociating the sums is what lets the compiler vectorise them; NaN and
 * Inf still propagate (no finite-math assumption), and the caller recomputes exactly
 * when the sum of squares is not finite.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define PARITY_BLOCK 4096
#define PARITY_LANES 16

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && defined(__linux__)
#define PARITY_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef PARITY_CLONES
#define PARITY_CLONES
#endif

int parity_abi(void) { return 1; }

PARITY_CLONES
void parity_block_hashes(const uint32_t *words, size_t nblocks, const uint32_t *keys,
                         uint32_t *hashes)
{
    for (size_t b = 0; b < nblocks; b++) {
        const uint32_t *w = words + b * PARITY_BLOCK;
        uint32_t lane[PARITY_LANES] = {0};
        for (size_t j = 0; j < PARITY_BLOCK; j += PARITY_LANES)
            for (int l = 0; l < PARITY_LANES; l++)
                lane[l] += w[j + l] * keys[j + l];
        uint32_t h = 0;
        for (int l = 0; l < PARITY_LANES; l++)
            h += lane[l];
        hashes[b] = h;
    }
}

/* out: min, max, sum, sum of squares over all n values; hashes: one per whole block. */
PARITY_CLONES
void parity_f32_summary(const float *x, size_t n, const uint32_t *keys, uint32_t *hashes,
                        double *out)
{
    size_t nblocks = n / PARITY_BLOCK;
    float mn[PARITY_LANES], mx[PARITY_LANES];
    for (int l = 0; l < PARITY_LANES; l++) {
        mn[l] = INFINITY;
        mx[l] = -INFINITY;
    }
    double s = 0.0, sq = 0.0;
    for (size_t b = 0; b < nblocks; b++) {
        const float *v = x + b * PARITY_BLOCK;
        const uint32_t *w = (const uint32_t *)v;
        uint32_t h[PARITY_LANES] = {0};
        float bs[PARITY_LANES] = {0}, bq[PARITY_LANES] = {0};
        for (size_t j = 0; j < PARITY_BLOCK; j += PARITY_LANES) {
            for (int l = 0; l < PARITY_LANES; l++) {
                float f = v[j + l];
                h[l] += w[j + l] * keys[j + l];
                bs[l] += f;
                bq[l] += f * f;
                mn[l] = f < mn[l] ? f : mn[l];
                mx[l] = f > mx[l] ? f : mx[l];
            }
        }
        uint32_t hh = 0;
        double ds = 0.0, dq = 0.0;
        for (int l = 0; l < PARITY_LANES; l++) {
            hh += h[l];
            ds += bs[l];
            dq += bq[l];
        }
        hashes[b] = hh;
        s += ds;
        sq += dq;
    }
    float tmn = INFINITY, tmx = -INFINITY;
    for (size_t i = nblocks * PARITY_BLOCK; i < n; i++) {
        float f = x[i];
        s += f;
        sq += (double)f * f;
        tmn = f < tmn ? f : tmn;
        tmx = f > tmx ? f : tmx;
    }
    for (int l = 0; l < PARITY_LANES; l++) {
        tmn = mn[l] < tmn ? mn[l] : tmn;
        tmx = mx[l] > tmx ? mx[l] : tmx;
    }
    out[0] = tmn;
    out[1] = tmx;
    out[2] = s;
    out[3] = sq;
}
