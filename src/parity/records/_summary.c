/* One pass over a tensor's memory for the capture hooks (parity/records/native.py).
 *
 * The hash is the one stats.content_hash defines: the data read as little-endian
 * uint32 words in blocks of 4096, each block reduced to sum(word * key) mod 2^32.
 * Unsigned arithmetic wraps mod 2^32 in C, so every compiler and machine gives the
 * numpy einsum's bytes. The float32 kernel also takes min, max, sum, sum of squares
 * and sum of absolute values in the same pass (accumulated per block in float32
 * lanes, across blocks in double). Reassociating the sums is what lets the compiler
 * vectorise them; NaN and Inf still propagate (no finite-math assumption), and the
 * caller recomputes exactly when the sum of squares is not finite.
 *
 * The sketch (docs/stats-sketch.md) is a count-sketch of 4 rows x 16 buckets, linear
 * in the values: element i lies in chunk g = i / 16 and lane l = i % 16; the chunk's
 * 4 sign bits (one per row) are bits 4(g%16).. of splitmix64 of (seed key, g/16), and in block
 * b = i / 4096 row r puts lane l in bucket (l + o_r(b)) % 16, o_r(b) from splitmix64 of
 * (block key, b). Each block is sketched right after its hash/stats loop, while it is
 * in L1: its chunks are added, in double, into 16 bins by sign pattern, and each row
 * is a signed sum of the bins. Every sketch sum is a double sum in a fixed order with
 * no reassociation (the numpy path in native.py does the same additions in the same
 * order), so both paths give the same bits. Beside it, per bucket, the sum of x^2 of
 * the elements it holds (from float32 lane sums: equal up to rounding), which bounds
 * what it may hold when every element is within tolerance.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define PARITY_BLOCK 4096
#define PARITY_LANES 16

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones) && defined(__linux__)
#define PARITY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef PARITY_CLONES
#define PARITY_CLONES
#endif

#define PARITY_CHUNK 16
#define PARITY_SK_ROWS 4
#define PARITY_SK_BUCKETS 16
#define PARITY_SK_PATTERNS 16 /* 2^rows */
#define PARITY_SK_SIZE (PARITY_SK_ROWS * PARITY_SK_BUCKETS)
#define PARITY_GOLDEN 0x9E3779B97F4A7C15ULL

#if defined(__clang__)
#define PARITY_EXACT_FP
#define PARITY_NO_REASSOC _Pragma("clang fp reassociate(off)") _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define PARITY_EXACT_FP __attribute__((optimize("no-associative-math", "fp-contract=off")))
#define PARITY_NO_REASSOC
#else
#define PARITY_EXACT_FP
#define PARITY_NO_REASSOC
#endif

int parity_abi(void) { return 2; }

static inline uint64_t parity_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Per lane (i % 16): sum of x^2 over nchunks chunks (float32 lanes, as the summary's loop). */
static void parity_lane_squares(const float *x, size_t nchunks, float *lq)
{
    for (int l = 0; l < PARITY_CHUNK; l++)
        lq[l] = 0.0f;
    for (size_t c = 0; c < nchunks; c++)
        for (int l = 0; l < PARITY_CHUNK; l++) {
            float f = x[c * PARITY_CHUNK + l];
            lq[l] += f * f;
        }
}

/* Adds the sketch of nchunks chunks of 16 values (global chunk index g0.., block b) into
 * sk[0..64), and the block's lane sums of x^2 (lq) into the same buckets of sk[64..128):
 * what each bucket holds, for the tolerance it allows. */
PARITY_EXACT_FP PARITY_CLONES
static void parity_sketch_block(const float *x, size_t nchunks, uint64_t g0, uint64_t b, uint64_t ckey,
                                uint64_t bkey, double *sk, const float *next, const float *lq)
{
    PARITY_NO_REASSOC
    double bins[PARITY_SK_PATTERNS][PARITY_CHUNK];
    for (int p = 0; p < PARITY_SK_PATTERNS; p++)
        for (int l = 0; l < PARITY_CHUNK; l++)
            bins[p][l] = 0.0;
    uint64_t word = 0;
    for (size_t c = 0; c < nchunks; c++) {
        uint64_t g = g0 + c; /* one 64-bit hash gives the 4-bit patterns of 16 chunks */
        if (c == 0 || g % 16 == 0)
            word = parity_mix64(ckey + (g / 16 + 1) * PARITY_GOLDEN);
        unsigned p = (unsigned)(word >> (4 * (g % 16))) & (PARITY_SK_PATTERNS - 1);
        const float *v = x + c * PARITY_CHUNK;
        if (next) /* one cache line of the next block per chunk: memory keeps streaming meanwhile */
            __builtin_prefetch(next + c * PARITY_CHUNK);
        double *d = bins[p];
        for (int l = 0; l < PARITY_CHUNK; l++)
            d[l] += (double)v[l];
    }
    uint64_t off = parity_mix64(bkey + (b + 1) * PARITY_GOLDEN);
    for (int r = 0; r < PARITY_SK_ROWS; r++) {
        double row[PARITY_CHUNK];
        for (int l = 0; l < PARITY_CHUNK; l++)
            row[l] = 0.0;
        for (int p = 0; p < PARITY_SK_PATTERNS; p++) {
            if ((p >> r) & 1)
                for (int l = 0; l < PARITY_CHUNK; l++)
                    row[l] -= bins[p][l];
            else
                for (int l = 0; l < PARITY_CHUNK; l++)
                    row[l] += bins[p][l];
        }
        unsigned o = (unsigned)(off >> (4 * r)) & (PARITY_SK_BUCKETS - 1);
        double *out = sk + r * PARITY_SK_BUCKETS;
        for (int l = 0; l < PARITY_CHUNK; l++) {
            unsigned k = (l + o) & (PARITY_SK_BUCKETS - 1);
            out[k] += row[l];
            out[PARITY_SK_SIZE + k] += lq[l];
        }
    }
}

static void parity_sketch_keys(uint32_t seed, uint64_t *ckey, uint64_t *bkey)
{
    *ckey = parity_mix64((uint64_t)seed + PARITY_GOLDEN);
    *bkey = parity_mix64(*ckey + PARITY_GOLDEN);
}

/* The partial last block, copied and zero-padded to whole chunks: one block call, as numpy does it. */
static void parity_sketch_tail(const float *x, size_t n, size_t start, uint64_t ckey, uint64_t bkey, double *sk)
{
    size_t rem = n - start;
    if (!rem)
        return;
    float pad[PARITY_BLOCK];
    size_t nchunks = (rem + PARITY_CHUNK - 1) / PARITY_CHUNK;
    for (size_t i = 0; i < nchunks * PARITY_CHUNK; i++)
        pad[i] = i < rem ? x[start + i] : 0.0f;
    float lq[PARITY_CHUNK];
    parity_lane_squares(pad, nchunks, lq);
    parity_sketch_block(pad, nchunks, start / PARITY_CHUNK, start / PARITY_BLOCK, ckey, bkey, sk, NULL, lq);
}

/* sk: 2 * PARITY_SK_SIZE doubles (sketch, bucket sums of x^2), zeroed here. */
void parity_f32_sketch(const float *x, size_t n, uint32_t seed, double *sk)
{
    uint64_t ckey, bkey;
    parity_sketch_keys(seed, &ckey, &bkey);
    for (int i = 0; i < 2 * PARITY_SK_SIZE; i++)
        sk[i] = 0.0;
    size_t nblocks = n / PARITY_BLOCK;
    float lq[PARITY_CHUNK];
    for (size_t b = 0; b < nblocks; b++) {
        parity_lane_squares(x + b * PARITY_BLOCK, PARITY_BLOCK / PARITY_CHUNK, lq);
        parity_sketch_block(x + b * PARITY_BLOCK, PARITY_BLOCK / PARITY_CHUNK, b * (PARITY_BLOCK / PARITY_CHUNK), b,
                            ckey, bkey, sk, b + 1 < nblocks ? x + (b + 1) * PARITY_BLOCK : NULL, lq);
    }
    parity_sketch_tail(x, n, nblocks * PARITY_BLOCK, ckey, bkey, sk);
}

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

/* out: min, max, sum, sum of squares, sum of absolute values over all n values; hashes:
 * one per whole block; sk (unless NULL): the sketch with seed, as parity_f32_sketch. */
PARITY_CLONES
void parity_f32_summary(const float *x, size_t n, const uint32_t *keys, uint32_t *hashes,
                        double *out, uint32_t seed, double *sk)
{
    uint64_t ckey, bkey;
    parity_sketch_keys(seed, &ckey, &bkey);
    if (sk)
        for (int i = 0; i < 2 * PARITY_SK_SIZE; i++)
            sk[i] = 0.0;
    size_t nblocks = n / PARITY_BLOCK;
    float mn[PARITY_LANES], mx[PARITY_LANES];
    for (int l = 0; l < PARITY_LANES; l++) {
        mn[l] = INFINITY;
        mx[l] = -INFINITY;
    }
    double s = 0.0, sq = 0.0, sa = 0.0;
    for (size_t b = 0; b < nblocks; b++) {
        const float *v = x + b * PARITY_BLOCK;
        const uint32_t *w = (const uint32_t *)v;
        uint32_t h[PARITY_LANES] = {0};
        float bs[PARITY_LANES] = {0}, bq[PARITY_LANES] = {0}, ba[PARITY_LANES] = {0};
        for (size_t j = 0; j < PARITY_BLOCK; j += PARITY_LANES) {
            for (int l = 0; l < PARITY_LANES; l++) {
                float f = v[j + l];
                h[l] += w[j + l] * keys[j + l];
                bs[l] += f;
                bq[l] += f * f;
                ba[l] += fabsf(f);
                mn[l] = f < mn[l] ? f : mn[l];
                mx[l] = f > mx[l] ? f : mx[l];
            }
        }
        uint32_t hh = 0;
        double ds = 0.0, dq = 0.0, da = 0.0;
        for (int l = 0; l < PARITY_LANES; l++) {
            hh += h[l];
            ds += bs[l];
            dq += bq[l];
            da += ba[l];
        }
        hashes[b] = hh;
        s += ds;
        sq += dq;
        sa += da;
        if (sk) /* the block is in L1 now */
            parity_sketch_block(v, PARITY_BLOCK / PARITY_CHUNK, b * (PARITY_BLOCK / PARITY_CHUNK), b, ckey, bkey, sk,
                                b + 1 < nblocks ? v + PARITY_BLOCK : NULL, bq);
    }
    float tmn = INFINITY, tmx = -INFINITY;
    for (size_t i = nblocks * PARITY_BLOCK; i < n; i++) {
        float f = x[i];
        s += f;
        sq += (double)f * f;
        sa += fabs((double)f);
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
    out[4] = sa;
    if (sk)
        parity_sketch_tail(x, n, nblocks * PARITY_BLOCK, ckey, bkey, sk);
}
