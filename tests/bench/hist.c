/*
 * hist.c - newsarch-bench: a fixed-size log-linear latency histogram.
 *
 * A value v >= 64 ns falls in power p = floor(log2 v) - 5 and sub-bucket
 * (v >> (p - 1)) & 63 ... i.e. the 6 bits after the leading one; values
 * below 64 ns get one bucket per nanosecond. Quantiles report the middle
 * of the bucket, so the error is under 1% of the value.
 */
#include "bench.h"

static unsigned bucket_of(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned lz = (unsigned)__builtin_clzll(v);
	unsigned msb = 63 - lz;                   /* >= HIST_SUB_BITS */
	unsigned shift = msb - HIST_SUB_BITS;
	unsigned p = shift + 1;                   /* power index, >= 1 */
	if (p >= HIST_POW)
		return HIST_BUCKETS - 1;
	return p * HIST_SUB + (unsigned)((v >> shift) & (HIST_SUB - 1));
}

static double bucket_mid(unsigned b)
{
	unsigned p = b / HIST_SUB, s = b % HIST_SUB;
	if (p == 0)
		return (double)s;
	unsigned shift = p - 1;
	double lo = (double)(((uint64_t)HIST_SUB + s) << shift);
	double width = (double)((uint64_t)1 << shift);
	return lo + width / 2.0;
}

void hist_add(hist *h, uint64_t ns)
{
	h->b[bucket_of(ns)]++;
	h->count++;
}

void hist_merge(hist *dst, const hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
}

double hist_quantile(const hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > rank)
			return bucket_mid(i);
	}
	return bucket_mid(HIST_BUCKETS - 1);
}
