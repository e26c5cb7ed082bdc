/* rng.c — xoshiro256** seeded through splitmix64: fast, reproducible, and
 * its whole state fits in a snapshot. */
#include <math.h>

#include "cnn.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cnn_rng_seed(cnn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cnn_rng_next(cnn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cnn_rng_uniform(cnn_rng *r) { return (double)(cnn_rng_next(r) >> 11) * 0x1.0p-53; }

double cnn_rng_gaussian(cnn_rng *r)
{
    /* Box-Muller; one value per call keeps the state simple to snapshot. */
    double u1 = cnn_rng_uniform(r), u2 = cnn_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint32_t cnn_rng_below(cnn_rng *r, uint32_t n)
{
    return n ? (uint32_t)(((cnn_rng_next(r) >> 32) * (uint64_t)n) >> 32) : 0;
}
