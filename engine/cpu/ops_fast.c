/* The fast CPU ops: the contracts of ops_ref.c, threaded over the pool and blocked for the caches,
 * with AVX2 + FMA + F16C inner loops chosen at run time and plain C inner loops elsewhere (so the
 * build never needs -march=native and runs on any x86-64 or other CPU).
 *
 * What matters is matmul (95% of the time):
 * - M = 1 (decode) is bandwidth bound: each thread streams its own rows of W exactly once,
 *   widening bf16/f16 to f32 in registers. A task is one long contiguous stretch of rows
 *   (MV_TASKS_PER_THREAD per thread, at least MV_MIN_ROWS): each new stretch costs the hardware
 *   prefetcher a ramp-up, and tasks of 16 rows (128 KiB) streamed at 60-67% of the bandwidth
 *   roofline in a decode step where stretches of N / 8 rows reach 74-77% (same run).
 * - M > 1 (prefill, vision) is compute bound: a task owns MM_NT rows of W; for each K block it
 *   converts them once to f32 in its scratch (L2) and sweeps every 4-row group of x over them with
 *   a 4x3 register-blocked kernel, so each converted W tile is reused M/4 times.
 * - With bf16 activations (opt-in, AVX512_BF16 CPUs, bf16 weights), M = 1: x is rounded to bf16
 *   once and each row is streamed through _mm512_dpbf16_ps, which keeps up with memory where the
 *   widening f32 loop does not on a busy core (mv_rows_bf16).
 * - With bf16 activations, M > 1: the W tile stays bf16,
 *   repacked in pairs of k so 16 output columns share a zmm register, x is rounded to bf16 once
 *   per matmul, a chunk of rows at a time into cpu->xb (rounding it again for every task was 13%
 *   of a prefill), and an 8x48 kernel of _mm512_dpbf16_ps accumulates the exact products in
 *   f32 (no horizontal sums, twice the f32 FMA rate). A task owns MB_NT = 288 W rows (a 576 KiB
 *   bf16 tile in L2): reading x is then what limits it, and twice the rows per task halves how
 *   often x is streamed (measured 5476x1536x4608: 290 -> 330 GFLOP/s; N = 1536: 254 -> 309).
 * Attention is an online-softmax (flash-style) walk over blocks of keys by groups of query rows of
 * one KV head (under GQA the query heads sharing it are rows too, so a decode step reads each key
 * once per KV head, not once per query head), so it needs no scratch proportional to T and loads
 * each key and value row once per group. With AVX2 each key block is first transposed into the thread's scratch (K^T tile
 * [hd][ATT_KB], shared by the task's groups) so QK^T runs as a register-blocked 4x16 matmul
 * kernel with no horizontal sums; PV keeps 4 rows x 16 dims in registers over the block. With bf16
 * activations attention reuses the bf16 matmul kernel for QK^T and PV (attb_task: 4.4x the f32
 * path's GFLOP/s in bench_ops at the vision tower's shape). Elementwise ops are cheap next to
 * matmul: they run the reference row loops, split over the pool. Arguments are validated by ops.c. */
#include <math.h>
#include <string.h>

#include "cpu/ops_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define FAST_X86 1
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#else
#define FAST_X86 0
#endif

#if FAST_X86 && defined(INTAKE_HAVE_AVX512BF16)
#define FAST_BF16 1
/* a superset of AVX2's target, so the AVX2 building blocks inline into the bf16 code */
#define BF16 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512bf16")))
#define BF16_INLINE                                 \
	static inline __attribute__((always_inline, \
				     target("avx2,fma,f16c,avx512f,avx512bw,avx512bf16")))
#else
#define FAST_BF16 0
#endif

enum {
	MM_KC = 512,      /* K block: a packed 4-row x tile and 3-row W tile (14 KiB) in L1 */
	MM_MR = 4,        /* x rows per kernel call */
	MM_NR = 3,        /* W rows per kernel call; 4x3 accumulators + 3 W + 1 x = 16 ymm */
	MM_NT = 144,      /* W rows per task (multiple of MM_NR); f32 tile 288 KiB in L2; more
	                         * rows per packed x tile means fewer copies of x */
	MV_MIN_ROWS = 64, /* M = 1: fewest W rows per task */
	MV_TASKS_PER_THREAD = 4, /* M = 1: a few tasks per thread, so one slowed thread is helped */
	ELEMS_PER_TASK = 16384,  /* below this an elementwise task is not worth a thread */
	ATT_QB = 4,              /* query rows sharing each key and value load in registers */
	ATT_GROUPS = 4,          /* groups of ATT_QB rows per task, sharing each key block in L2 */
	ATT_KB = 64,             /* keys per online-softmax block (a multiple of 16) */
	MB_KC = 1024,            /* bf16 K block: the bf16 W tile takes the f32 tile's bytes */
	MB_MR = 8,               /* bf16 kernel: x rows; 8x3 zmm accumulators + 3 W = 27 zmm */
	MB_NC = 48,              /* bf16 kernel: W rows (output columns), 3 zmm of 16 */
	MB_NT = 288,             /* bf16: W rows per task; fewer tasks read x fewer times */
	MB_XB = 1 << 22,         /* bf16 x chunk: elements (8 MiB); 1024 rows of K = 4096 */
};
_Static_assert(MB_NT % MB_NC == 0, "a task's W rows split into whole bf16 panels");
_Static_assert(MB_KC % 32 == 0, "the x rounding works in groups of 32");
_Static_assert(ATT_KB % 16 == 0, "qk_avx2 scores 16 keys at a time");

#if FAST_BF16
static size_t attb_scratch_floats(void);
#endif

size_t vlm_fast_xb_elems(void)
{
	return MB_XB;
}

size_t vlm_fast_scratch_floats(void)
{
	/* W tile + x tile of the f32 or the bf16 layout, or attention's K^T tile, whichever is
	 * larger, rounded to a cache line so threads never share one */
	size_t f32 = (size_t)MM_NT * MM_KC + (size_t)MM_MR * MM_KC;
	size_t bf16 = (size_t)MB_NT * MB_KC / 2;
	size_t att = (size_t)VLM_CPU_MAX_HEAD_DIM * ATT_KB;
	size_t n = f32 > bf16 ? f32 : bf16;
	n = n > att ? n : att;
#if FAST_BF16
	n = n > attb_scratch_floats() ? n : attb_scratch_floats();
#endif
	return (n + 15) & ~(size_t)15;
}

bool vlm_fast_bf16_supported(void)
{
#if FAST_BF16
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512bf16");
#else
	return false;
#endif
}

bool vlm_fast_avx2_supported(void)
{
#if FAST_X86
	__builtin_cpu_init();
	/* F16C from CPUID itself: clang before 15 does not know "f16c" in __builtin_cpu_supports. */
	unsigned eax, ebx, ecx, edx;
	bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
	return false;
#endif
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* ---- AVX2 building blocks ---------------------------------------------------------------- */

#if FAST_X86
/* Eight consecutive elements of a bf16/f16/f32 array as f32; `dt` is a constant at every call
 * site, so each caller is compiled for one dtype. */
AVX2_INLINE __m256 ld8(enum vlm_dtype dt, const void *p, int64_t i)
{
	switch (dt) {
	case VLM_DTYPE_BF16: {
		__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
		return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
	}
	case VLM_DTYPE_F16:
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
	default:
		return _mm256_loadu_ps((const float *)p + i);
	}
}

/* [sum(a), sum(b), sum(c), sum(d)] */
AVX2_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
	__m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
	return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

AVX2_INLINE float hsum(__m256 a)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* exp(x) for x <= 0 to about 2 ulp: x = n ln2 + r with |r| <= ln2/2, a degree-6 Taylor polynomial
 * for exp(r) (remainder < 2e-7 relative), and 2^n built in the exponent bits. Inputs below -87
 * give about 1e-38 instead of 0, harmless next to the softmax maximum's exp(0) = 1. */
AVX2_INLINE __m256 exp256(__m256 x)
{
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
	__m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
				   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
	__m256 p = _mm256_set1_ps(1.0f / 720);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(
		_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

/* ---- matmul --------------------------------------------------------------------------------- */

struct mm_job {
	const struct vlm_cpu *cpu;
	float *y;
	const float *x;
	int64_t M, N, K;
	const struct vlm_tensor *w, *bias;
	bool bf16; /* the bf16-activation path (bf16 W, the CPU has AVX512_BF16) */
	/* the rows [m0, m0 + mc) this pool run computes; on the bf16 path cpu->xb holds them
	 * rounded, rows of kp elements, zero up to the next multiple of MB_MR rows */
	int64_t m0, mc, kp;
};

static void mm_init_rows(const struct mm_job *j, int64_t n0, int64_t nt)
{
	for (int64_t m = j->m0; m < j->m0 + j->mc; m++)
		for (int64_t n = n0; n < n0 + nt; n++)
			j->y[m * j->N + n] =
				j->bias ? vlm_float_load(j->bias->dtype, j->bias->data, n) : 0.0f;
}

#if FAST_X86
/* y[n0 .. n0+nt) += W rows . x, for M = 1. One row at a time, so a task reads its rows as one
 * contiguous stream, which the hardware prefetcher follows at full speed (measured: four rows
 * side by side, sharing x loads, streamed a third slower); x stays in L1. */
AVX2_INLINE void mv_rows_avx2(enum vlm_dtype dt, const struct mm_job *j, int64_t n0, int64_t nt)
{
	const float *x = j->x;
	int64_t K = j->K;
	for (int64_t n = n0; n < n0 + nt; n++) {
		int64_t o = n * K, k = 0;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (; k + 32 <= K; k += 32) {
			a0 = _mm256_fmadd_ps(ld8(dt, j->w->data, o + k), _mm256_loadu_ps(x + k),
					     a0);
			a1 = _mm256_fmadd_ps(ld8(dt, j->w->data, o + k + 8),
					     _mm256_loadu_ps(x + k + 8), a1);
			a2 = _mm256_fmadd_ps(ld8(dt, j->w->data, o + k + 16),
					     _mm256_loadu_ps(x + k + 16), a2);
			a3 = _mm256_fmadd_ps(ld8(dt, j->w->data, o + k + 24),
					     _mm256_loadu_ps(x + k + 24), a3);
		}
		for (; k + 8 <= K; k += 8)
			a0 = _mm256_fmadd_ps(ld8(dt, j->w->data, o + k), _mm256_loadu_ps(x + k),
					     a0);
		float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
		for (; k < K; k++)
			s += vlm_float_load(dt, j->w->data, o + k) * x[k];
		j->y[n] += s;
	}
}

AVX2 static void mv_task_avx2(const struct mm_job *j, int64_t n0, int64_t nt)
{
	switch (j->w->dtype) {
	case VLM_DTYPE_BF16:
		mv_rows_avx2(VLM_DTYPE_BF16, j, n0, nt);
		break;
	case VLM_DTYPE_F16:
		mv_rows_avx2(VLM_DTYPE_F16, j, n0, nt);
		break;
	default:
		mv_rows_avx2(VLM_DTYPE_F32, j, n0, nt);
		break;
	}
}

AVX2 static void convert_avx2(enum vlm_dtype dt, const void *src, int64_t off, int64_t n,
			      float *dst)
{
	int64_t i = 0;
	switch (dt) {
	case VLM_DTYPE_BF16:
		for (; i + 8 <= n; i += 8)
			_mm256_storeu_ps(dst + i, ld8(VLM_DTYPE_BF16, src, off + i));
		break;
	case VLM_DTYPE_F16:
		for (; i + 8 <= n; i += 8)
			_mm256_storeu_ps(dst + i, ld8(VLM_DTYPE_F16, src, off + i));
		break;
	default:
		break;
	}
	for (; i < n; i++)
		dst[i] = vlm_float_load(dt, src, off + i);
}

/* y[0..mr)[0..nr) += xp[4][kp] . wp[3][kp]^T; kp is a multiple of 8, unused rows are zero. */
AVX2 static void mm_kernel_avx2(const float *xp, const float *wp, int64_t kp, float *y, int64_t ldy,
				int mr, int nr)
{
	__m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00,
	       c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
	const float *w0 = wp, *w1 = wp + kp, *w2 = wp + 2 * kp;
	const float *x0 = xp, *x1 = xp + kp, *x2 = xp + 2 * kp, *x3 = xp + 3 * kp;
	for (int64_t k = 0; k < kp; k += 8) {
		__m256 b0 = _mm256_load_ps(w0 + k), b1 = _mm256_load_ps(w1 + k),
		       b2 = _mm256_load_ps(w2 + k);
		__m256 a = _mm256_load_ps(x0 + k);
		c00 = _mm256_fmadd_ps(a, b0, c00);
		c01 = _mm256_fmadd_ps(a, b1, c01);
		c02 = _mm256_fmadd_ps(a, b2, c02);
		a = _mm256_load_ps(x1 + k);
		c10 = _mm256_fmadd_ps(a, b0, c10);
		c11 = _mm256_fmadd_ps(a, b1, c11);
		c12 = _mm256_fmadd_ps(a, b2, c12);
		a = _mm256_load_ps(x2 + k);
		c20 = _mm256_fmadd_ps(a, b0, c20);
		c21 = _mm256_fmadd_ps(a, b1, c21);
		c22 = _mm256_fmadd_ps(a, b2, c22);
		a = _mm256_load_ps(x3 + k);
		c30 = _mm256_fmadd_ps(a, b0, c30);
		c31 = _mm256_fmadd_ps(a, b1, c31);
		c32 = _mm256_fmadd_ps(a, b2, c32);
	}
	float s[4][4];
	_mm_storeu_ps(s[0], hsum4(c00, c01, c02, c02));
	_mm_storeu_ps(s[1], hsum4(c10, c11, c12, c12));
	_mm_storeu_ps(s[2], hsum4(c20, c21, c22, c22));
	_mm_storeu_ps(s[3], hsum4(c30, c31, c32, c32));
	for (int i = 0; i < mr; i++)
		for (int jj = 0; jj < nr; jj++)
			y[i * ldy + jj] += s[i][jj];
}
#endif

/* One loop per dtype, so each is a plain widening loop the compiler can vectorize. */
static void convert_portable(enum vlm_dtype dt, const void *src, int64_t off, int64_t n, float *dst)
{
	const uint16_t *h = (const uint16_t *)src + off;
	switch (dt) {
	case VLM_DTYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = vlm_bf16_to_f32(h[i]);
		break;
	case VLM_DTYPE_F16:
		for (int64_t i = 0; i < n; i++)
			dst[i] = vlm_f16_to_f32(h[i]);
		break;
	default:
		memcpy(dst, (const float *)src + off, sizeof(float) * (size_t)n);
		break;
	}
}

/* The portable twin of mm_kernel_avx2: eight independent partial sums per dot product, a shape
 * compilers vectorize without reassociating floats. */
static void mm_kernel_portable(const float *xp, const float *wp, int64_t kp, float *y, int64_t ldy,
			       int mr, int nr)
{
	for (int i = 0; i < mr; i++) {
		for (int jj = 0; jj < nr; jj++) {
			const float *a = xp + i * kp, *b = wp + jj * kp;
			float acc[8] = { 0 };
			for (int64_t k = 0; k < kp; k += 8)
				for (int l = 0; l < 8; l++)
					acc[l] += a[k + l] * b[k + l];
			float s = 0;
			for (int l = 0; l < 8; l++)
				s += acc[l];
			y[i * ldy + jj] += s;
		}
	}
}

/* The portable decode path: each W row widened in stack-sized chunks and dotted with x. */
static void mv_rows_portable(const struct mm_job *j, int64_t n0, int64_t nt)
{
	float buf[256];
	for (int64_t n = n0; n < n0 + nt; n++) {
		float acc[8] = { 0 };
		for (int64_t k0 = 0; k0 < j->K; k0 += 256) {
			int64_t kc = min64(256, j->K - k0), k = 0;
			const float *x = j->x + k0;
			convert_portable(j->w->dtype, j->w->data, n * j->K + k0, kc, buf);
			for (; k + 8 <= kc; k += 8)
				for (int l = 0; l < 8; l++)
					acc[l] += buf[k + l] * x[k + l];
			for (; k < kc; k++)
				acc[0] += buf[k] * x[k];
		}
		float sum = 0;
		for (int l = 0; l < 8; l++)
			sum += acc[l];
		j->y[n] += sum;
	}
}

#if FAST_BF16
/* dst[c * MB_NC + r] = bf16 pair c (elements 2c, 2c + 1) of row r, for 16 rows (row r at
 * src + r * ld) of 16 pairs: a 16x16 transpose of 32-bit words in registers (pairs, then quads,
 * then 128-bit lanes), one zmm store per column instead of 16 scattered word stores. */
BF16_INLINE void transpose16_pairs(const uint16_t *src, int64_t ld, uint32_t *dst)
{
	__m512i r[16], t[16];
	for (int i = 0; i < 16; i++)
		r[i] = _mm512_loadu_si512((const void *)(src + i * ld));
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	/* r[4i + j], lane L: word 4L + j of rows 4i .. 4i + 3 */
	for (int i = 0; i < 16; i += 4) {
		r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
		r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
		r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
		r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	for (int j = 0; j < 4; j++) {
		__m512i a0 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88),
			a1 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd),
			b0 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88),
			b1 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
		_mm512_storeu_si512(dst + (0 + j) * MB_NC, _mm512_shuffle_i32x4(a0, b0, 0x88));
		_mm512_storeu_si512(dst + (4 + j) * MB_NC, _mm512_shuffle_i32x4(a1, b1, 0x88));
		_mm512_storeu_si512(dst + (8 + j) * MB_NC, _mm512_shuffle_i32x4(a0, b0, 0xdd));
		_mm512_storeu_si512(dst + (12 + j) * MB_NC, _mm512_shuffle_i32x4(a1, b1, 0xdd));
	}
}

/* The bf16 W tile: rows [n0, n0 + nt) and columns [k0, k0 + kc) of W as panels of MB_NC rows,
 * each laid out [kh][MB_NC] in 32-bit words holding the bf16 pair (k0 + 2kk, k0 + 2kk + 1), even
 * k in the low half as dpbf16 pairs them (on little-endian x86 that is the 32-bit word at
 * element k0 + 2kk). Whole blocks of 16 rows x 16 words are transposed in registers, the edges pair by
 * pair; rows past nt and an odd last column are zero. */
BF16 static void mmb_pack_w(const struct mm_job *j, int64_t n0, int64_t nt, int64_t k0, int64_t kc,
			    uint32_t *wp)
{
	const uint16_t *w = j->w->data;
	int64_t kh = (kc + 1) / 2, n_pad = (nt + MB_NC - 1) / MB_NC * MB_NC;
	/* pairs in whole 16-pair blocks (never the odd last column); rows pair up alike only with
	 * an even K */
	int64_t kh16 = j->K % 2 == 0 ? kc / 2 / 16 * 16 : 0;
	for (int64_t n = 0; n < n_pad; n++) {
		uint32_t *dst = wp + (n / MB_NC) * kh * MB_NC + n % MB_NC;
		if (n >= nt) {
			for (int64_t kk = 0; kk < kh; kk++)
				dst[kk * MB_NC] = 0;
			continue;
		}
		const uint16_t *src = w + (n0 + n) * j->K + k0;
		int64_t kk = 0;
		if (n % 16 == 0 && n + 16 <= nt) {
			for (; kk < kh16; kk += 16)
				transpose16_pairs(src + 2 * kk, j->K, dst + kk * MB_NC);
		} else if (n % 16 != 0 && n / 16 * 16 + 16 <= nt) {
			kk = kh16; /* done with its block */
		}
		for (; 2 * kk + 1 < kc; kk++)
			dst[kk * MB_NC] = (uint32_t)src[2 * kk] | (uint32_t)src[2 * kk + 1] << 16;
		if (kk < kh)
			dst[kk * MB_NC] = src[2 * kk];
	}
}

/* dst[0 .. kc) = x[0 .. kc) rounded to bf16 (nearest even), and dst[kc] = 0 when kc is odd, so
 * the row is whole dpbf16 pairs. */
BF16 static void round_row_bf16(const float *x, int64_t kc, uint16_t *dst)
{
	int64_t k = 0;
	for (; k + 32 <= kc; k += 32) {
		__m512bh h =
			_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
		_mm512_storeu_si512(dst + k, (__m512i)h);
	}
	for (; k < kc; k++)
		dst[k] = vlm_f32_to_bf16(x[k]);
	if (kc % 2)
		dst[kc] = 0;
}

/* Rounding task: rows [m0 + 8 task, + 8) of x into cpu->xb, rows past the chunk zero. */
BF16 static void mmb_round_task(void *ctx, int64_t task, int thread)
{
	const struct mm_job *j = ctx;
	for (int64_t r = task * MB_MR; r < (task + 1) * MB_MR; r++) {
		uint16_t *dst = j->cpu->xb + r * j->kp;
		if (r < j->mc)
			round_row_bf16(j->x + (j->m0 + r) * j->K, j->K, dst);
		else
			memset(dst, 0, sizeof(uint16_t) * (size_t)j->kp);
	}
}

/* y[0..mr)[0..nc) += x tile . W panel [kh][MB_NC] (pairs), where the x tile's pair kk of row i
 * is the word xp[i * xs_i + kk * xs_k] (rows past mr are read too: zero or ignored). The 24
 * accumulators hold whole output columns, so nothing is summed across lanes. */
BF16_INLINE void mmb_kernel(const uint32_t *xp, int64_t xs_i, int64_t xs_k, const uint32_t *wp,
			    int64_t kh, float *y, int64_t ldy, int mr, int nc)
{
	__m512 c[MB_MR][3];
#pragma GCC unroll 8
	for (int i = 0; i < MB_MR; i++)
		c[i][0] = c[i][1] = c[i][2] = _mm512_setzero_ps();
	for (int64_t kk = 0; kk < kh; kk++) {
		const uint32_t *w = wp + kk * MB_NC, *x = xp + kk * xs_k;
		__m512bh b0 = (__m512bh)_mm512_loadu_si512(w),
			 b1 = (__m512bh)_mm512_loadu_si512(w + 16),
			 b2 = (__m512bh)_mm512_loadu_si512(w + 32);
#pragma GCC unroll 8
		for (int i = 0; i < MB_MR; i++) {
			__m512bh a = (__m512bh)_mm512_set1_epi32((int)x[i * xs_i]);
			c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
			c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
			c[i][2] = _mm512_dpbf16_ps(c[i][2], a, b2);
		}
	}
	for (int i = 0; i < mr; i++) {
		for (int v = 0; v < 3 && 16 * v < nc; v++) {
			int cols = nc - 16 * v < 16 ? nc - 16 * v : 16;
			__mmask16 mask = (__mmask16)((1u << cols) - 1);
			float *dst = y + i * ldy + 16 * v;
			_mm512_mask_storeu_ps(
				dst, mask,
				_mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), c[i][v]));
		}
	}
}

/* The bf16-activation twin of the f32 loop in mm_task: per K block the W tile is repacked once
 * and every group of MB_MR rounded x rows is swept over all its panels. */
BF16 static void mmb_task(const struct mm_job *j, int64_t n0, int64_t nt, int thread)
{
	uint32_t *wp = (uint32_t *)(j->cpu->scratch + (size_t)thread * vlm_fast_scratch_floats());
	const uint32_t *xb = (const uint32_t *)j->cpu->xb;
	int64_t xs = j->kp / 2;
	for (int64_t k0 = 0; k0 < j->K; k0 += MB_KC) {
		int64_t kc = min64(MB_KC, j->K - k0), kh = (kc + 1) / 2;
		mmb_pack_w(j, n0, nt, k0, kc, wp);
		for (int64_t m = 0; m < j->mc; m += MB_MR)
			for (int64_t r = 0; r < nt; r += MB_NC)
				mmb_kernel(xb + m * xs + k0 / 2, xs, 1, wp + r * kh, kh,
					   j->y + (j->m0 + m) * j->N + n0 + r, j->N,
					   (int)min64(MB_MR, j->mc - m), (int)min64(MB_NC, nt - r));
	}
}
#endif

#if FAST_BF16
/* y[n0 .. n0+nt) += W rows . x for M = 1 on the bf16 path, x rounded in cpu->xb: one
 * _mm512_dpbf16_ps takes 32 products, for which the widening f32 loop issues some twenty. That
 * loop is bound by the core, not by memory, whenever something else runs on the core's sibling
 * (measured alternating with a plain read of the same bytes on this VM: 0.63-0.95 of the read's
 * speed, moving from minute to minute; this loop 0.96-1.01). A last partial group of 32 is
 * loaded masked, zero past K in both W and x. */
BF16 static void mv_rows_bf16(const struct mm_job *j, int64_t n0, int64_t nt)
{
	const uint16_t *xb = j->cpu->xb;
	int64_t K = j->K, k_main = K / 128 * 128;
	for (int64_t n = n0; n < n0 + nt; n++) {
		const uint16_t *w = (const uint16_t *)j->w->data + n * K;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		int64_t k = 0;
		for (; k < k_main; k += 128) {
			a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(w + k),
					      (__m512bh)_mm512_loadu_si512(xb + k));
			a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(w + k + 32),
					      (__m512bh)_mm512_loadu_si512(xb + k + 32));
			a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_loadu_si512(w + k + 64),
					      (__m512bh)_mm512_loadu_si512(xb + k + 64));
			a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_loadu_si512(w + k + 96),
					      (__m512bh)_mm512_loadu_si512(xb + k + 96));
		}
		for (; k < K; k += 32) {
			__mmask32 m = K - k >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << (K - k)) - 1;
			a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, w + k),
					      (__m512bh)_mm512_maskz_loadu_epi16(m, xb + k));
		}
		j->y[n] += _mm512_reduce_add_ps(
			_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
	}
}
#endif

/* W rows per task (the last task may have fewer). */
static int64_t mm_task_rows(const struct mm_job *j)
{
	if (j->M > 1)
		return j->bf16 ? MB_NT : MM_NT;
	int64_t n_tasks = (int64_t)j->cpu->n_threads * MV_TASKS_PER_THREAD;
	int64_t rows = (j->N + n_tasks - 1) / n_tasks;
	return rows > MV_MIN_ROWS ? rows : MV_MIN_ROWS;
}

/* One task: W rows [n0, n0 + nt) against every row of x. */
static void mm_task(void *ctx, int64_t task, int thread)
{
	const struct mm_job *j = ctx;
	const struct vlm_cpu *cpu = j->cpu;
	bool avx2 = FAST_X86 && cpu->avx2;
	int64_t rows = mm_task_rows(j);
	int64_t n0 = task * rows, nt = min64(rows, j->N - n0);

	mm_init_rows(j, n0, nt);
	if (j->M == 1) {
#if FAST_BF16
		if (j->bf16) {
			mv_rows_bf16(j, n0, nt);
			return;
		}
#endif
#if FAST_X86
		if (avx2) {
			mv_task_avx2(j, n0, nt);
			return;
		}
#endif
		mv_rows_portable(j, n0, nt);
		return;
	}
#if FAST_BF16
	if (j->bf16) {
		mmb_task(j, n0, nt, thread);
		return;
	}
#endif
	float *wp = cpu->scratch + (size_t)thread * vlm_fast_scratch_floats();
	float *xp = wp + (size_t)MM_NT * MM_KC;
	int64_t nt_pad = (nt + MM_NR - 1) / MM_NR * MM_NR;
	for (int64_t k0 = 0; k0 < j->K; k0 += MM_KC) {
		int64_t kc = min64(MM_KC, j->K - k0), kp = (kc + 7) & ~(int64_t)7;
		/* Padding rows and columns are zero so they add nothing to any sum. */
		memset(wp, 0, sizeof(float) * (size_t)(nt_pad * kp));
		for (int64_t r = 0; r < nt; r++) {
			int64_t off = (n0 + r) * j->K + k0;
#if FAST_X86
			if (avx2) {
				convert_avx2(j->w->dtype, j->w->data, off, kc, wp + r * kp);
				continue;
			}
#endif
			convert_portable(j->w->dtype, j->w->data, off, kc, wp + r * kp);
		}
		for (int64_t m0 = 0; m0 < j->M; m0 += MM_MR) {
			int mr = (int)min64(MM_MR, j->M - m0);
			memset(xp, 0, sizeof(float) * (size_t)(MM_MR * kp));
			for (int i = 0; i < mr; i++)
				memcpy(xp + i * kp, j->x + (m0 + i) * j->K + k0,
				       sizeof(float) * (size_t)kc);
			for (int64_t r = 0; r < nt; r += MM_NR) {
				int nr = (int)min64(MM_NR, nt - r);
				float *y = j->y + m0 * j->N + n0 + r;
#if FAST_X86
				if (avx2) {
					mm_kernel_avx2(xp, wp + r * kp, kp, y, j->N, mr, nr);
					continue;
				}
#endif
				mm_kernel_portable(xp, wp + r * kp, kp, y, j->N, mr, nr);
			}
		}
	}
}

void vlm_fast_matmul(const struct vlm_cpu *cpu, float *y, const float *x, int64_t M,
		     const struct vlm_tensor *w, const struct vlm_tensor *bias)
{
	struct mm_job j = { .cpu = cpu,
			    .y = y,
			    .x = x,
			    .M = M,
			    .N = w->shape[0],
			    .K = w->shape[1],
			    .w = w,
			    .bias = bias,
			    .bf16 = cpu->bf16 && w->dtype == VLM_DTYPE_BF16 &&
				    (w->shape[1] + 1) / 2 * 2 * MB_MR <= MB_XB, /* 8 rows fit */
			    .mc = M };
	int64_t rows = mm_task_rows(&j), n_tasks = (j.N + rows - 1) / rows;
#if FAST_BF16
	if (j.bf16 && M == 1) {
		round_row_bf16(x, j.K, cpu->xb);
		vlm_pool_run(cpu->pool, mm_task, &j, n_tasks);
		return;
	}
	if (j.bf16) {
		j.kp = (j.K + 1) / 2 * 2;
		int64_t chunk = MB_XB / j.kp / MB_MR * MB_MR;
		chunk = chunk > MB_MR ? chunk : MB_MR;
		for (j.m0 = 0; j.m0 < M; j.m0 += chunk) {
			j.mc = min64(chunk, M - j.m0);
			vlm_pool_run(cpu->pool, mmb_round_task, &j, (j.mc + MB_MR - 1) / MB_MR);
			vlm_pool_run(cpu->pool, mm_task, &j, n_tasks);
		}
		return;
	}
#endif
	vlm_pool_run(cpu->pool, mm_task, &j, n_tasks);
}

/* ---- elementwise and row ops: reference row loops split over the pool ------------------ */

struct rows_job {
	void (*run)(const struct rows_job *j, int64_t r0, int64_t n);
	int64_t rows_per_task, n_rows;
	float *y;
	const float *x, *a, *b;
	const struct vlm_tensor *w, *bias;
	int64_t D, in_stride;
	float eps;
	bool log;
};

static void rows_task(void *ctx, int64_t task, int thread)
{
	const struct rows_job *j = ctx;
	int64_t r0 = task * j->rows_per_task;
	j->run(j, r0, min64(j->rows_per_task, j->n_rows - r0));
}

/* Runs j->run over n_rows rows of `row_elems` elements, at least ELEMS_PER_TASK per task. */
static void rows_run(const struct vlm_cpu *cpu, struct rows_job *j, int64_t n_rows,
		     int64_t row_elems)
{
	j->n_rows = n_rows;
	j->rows_per_task = row_elems >= ELEMS_PER_TASK ? 1 : ELEMS_PER_TASK / row_elems;
	vlm_pool_run(cpu->pool, rows_task, j, (n_rows + j->rows_per_task - 1) / j->rows_per_task);
}

static void rmsnorm_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	vlm_ref_rmsnorm(j->y + r0 * j->D, j->x + r0 * j->D, j->w, n, j->D, j->eps);
}

void vlm_fast_rmsnorm(const struct vlm_cpu *cpu, float *y, const float *x,
		      const struct vlm_tensor *w, int64_t M, int64_t D, float eps)
{
	struct rows_job j = { .run = rmsnorm_rows, .y = y, .x = x, .w = w, .D = D, .eps = eps };
	rows_run(cpu, &j, M, D);
}

static void layernorm_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	vlm_ref_layernorm(j->y + r0 * j->D, j->x + r0 * j->D, j->w, j->bias, n, j->D, j->eps);
}

void vlm_fast_layernorm(const struct vlm_cpu *cpu, float *y, const float *x,
			const struct vlm_tensor *w, const struct vlm_tensor *b, int64_t M,
			int64_t D, float eps)
{
	struct rows_job j = {
		.run = layernorm_rows, .y = y, .x = x, .w = w, .bias = b, .D = D, .eps = eps
	};
	rows_run(cpu, &j, M, D);
}

static void silu_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	vlm_ref_silu_mul(j->y + r0 * j->D, j->a + r0 * j->in_stride, j->b + r0 * j->in_stride, n,
			 j->D, j->in_stride);
}

void vlm_fast_silu_mul(const struct vlm_cpu *cpu, float *out, const float *gate, const float *up,
		       int64_t M, int64_t n, int64_t in_stride)
{
	struct rows_job j = {
		.run = silu_rows, .y = out, .a = gate, .b = up, .D = n, .in_stride = in_stride
	};
	rows_run(cpu, &j, M, n);
}

static void gelu_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	vlm_ref_gelu_erf(j->y + r0, j->x + r0, n);
}

void vlm_fast_gelu_erf(const struct vlm_cpu *cpu, float *y, const float *x, int64_t n)
{
	struct rows_job j = { .run = gelu_rows, .y = y, .x = x };
	rows_run(cpu, &j, n, 1);
}

static void add_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	vlm_ref_add(j->y + r0, j->a + r0, j->b + r0, n);
}

void vlm_fast_add(const struct vlm_cpu *cpu, float *y, const float *a, const float *b, int64_t n)
{
	struct rows_job j = { .run = add_rows, .y = y, .a = a, .b = b };
	rows_run(cpu, &j, n, 1);
}

static void softmax_rows(const struct rows_job *j, int64_t r0, int64_t n)
{
	if (j->log)
		vlm_ref_log_softmax(j->y + r0 * j->D, j->x + r0 * j->D, n, j->D);
	else
		vlm_ref_softmax(j->y + r0 * j->D, j->x + r0 * j->D, n, j->D);
}

void vlm_fast_softmax(const struct vlm_cpu *cpu, float *y, const float *x, int64_t M, int64_t n,
		      bool log)
{
	struct rows_job j = { .run = softmax_rows, .y = y, .x = x, .D = n, .log = log };
	rows_run(cpu, &j, M, n);
}

/* ---- RoPE: angles computed once per token and shared by every head ---------------------- */

struct rope_job {
	float *x;
	int64_t L, stride;
	int H, hd, rotary_dim;
	const int *sections;
	const int32_t *pos; /* text: [3, L]; vision: [L, 2] */
	float inv_freq[VLM_CPU_MAX_HEAD_DIM / 2];
	int64_t rows_per_task;
};

static void rope_text_task(void *ctx, int64_t task, int thread)
{
	const struct rope_job *j = ctx;
	int n_freq = j->rotary_dim / 2;
	float c[VLM_CPU_MAX_HEAD_DIM / 2], s[VLM_CPU_MAX_HEAD_DIM / 2];
	int64_t i1 = min64((task + 1) * j->rows_per_task, j->L);
	for (int64_t i = task * j->rows_per_task; i < i1; i++) {
		for (int f = 0; f < n_freq; f++) {
			int st = f < j->sections[0]                    ? 0
				 : f < j->sections[0] + j->sections[1] ? 1
								       : 2;
			float angle = (float)j->pos[st * j->L + i] * j->inv_freq[f];
			c[f] = cosf(angle);
			s[f] = sinf(angle);
		}
		for (int h = 0; h < j->H; h++) {
			float *v = j->x + i * j->stride + (int64_t)h * j->hd;
			for (int f = 0; f < n_freq; f++) {
				float a = v[2 * f], b = v[2 * f + 1];
				v[2 * f] = a * c[f] - b * s[f];
				v[2 * f + 1] = b * c[f] + a * s[f];
			}
		}
	}
}

void vlm_fast_rope_text(const struct vlm_cpu *cpu, float *x, int64_t L, int H, int hd,
			int64_t stride, int rotary_dim, const int sections[3], const int32_t *pos,
			float theta)
{
	struct rope_job j = { .x = x,
			      .L = L,
			      .stride = stride,
			      .H = H,
			      .hd = hd,
			      .rotary_dim = rotary_dim,
			      .sections = sections,
			      .pos = pos };
	for (int f = 0; f < rotary_dim / 2; f++)
		j.inv_freq[f] = vlm_cpu_inv_freq(theta, f, rotary_dim);
	j.rows_per_task = 1 + ELEMS_PER_TASK / ((int64_t)H * hd);
	vlm_pool_run(cpu->pool, rope_text_task, &j, (L + j.rows_per_task - 1) / j.rows_per_task);
}

static void rope_vision_task(void *ctx, int64_t task, int thread)
{
	const struct rope_job *j = ctx;
	int half = j->hd / 2, quarter = j->hd / 4;
	float c[VLM_CPU_MAX_HEAD_DIM / 2], s[VLM_CPU_MAX_HEAD_DIM / 2];
	int64_t i1 = min64((task + 1) * j->rows_per_task, j->L);
	for (int64_t i = task * j->rows_per_task; i < i1; i++) {
		for (int k = 0; k < half; k++) {
			float angle = k < quarter
					      ? (float)j->pos[2 * i] * j->inv_freq[k]
					      : (float)j->pos[2 * i + 1] * j->inv_freq[k - quarter];
			c[k] = cosf(angle);
			s[k] = sinf(angle);
		}
		for (int h = 0; h < j->H; h++) {
			float *v = j->x + i * j->stride + (int64_t)h * j->hd;
			for (int k = 0; k < half; k++) {
				float a = v[k], b = v[k + half];
				v[k] = a * c[k] - b * s[k];
				v[k + half] = b * c[k] + a * s[k];
			}
		}
	}
}

void vlm_fast_rope_vision(const struct vlm_cpu *cpu, float *x, int64_t N, int H, int hd,
			  int64_t stride, const int32_t *hw, float theta)
{
	struct rope_job j = { .x = x, .L = N, .stride = stride, .H = H, .hd = hd, .pos = hw };
	for (int f = 0; f < hd / 4; f++)
		j.inv_freq[f] = vlm_cpu_inv_freq(theta, f, hd / 2);
	j.rows_per_task = 1 + ELEMS_PER_TASK / ((int64_t)H * hd);
	vlm_pool_run(cpu->pool, rope_vision_task, &j, (N + j.rows_per_task - 1) / j.rows_per_task);
}

/* ---- attention -------------------------------------------------------------------------- */

/* Up to ATT_QB query rows of one head go through the keys together, so each key and value row
 * loaded serves ATT_QB queries. Rows of a group may see different key ranges (causal rows end
 * one key apart; a group may straddle a segment boundary): the group walks the union of the
 * ranges and each row zeroes the probabilities of keys outside its own. */
struct att_group {
	int n;                          /* rows in the group, 1..ATT_QB */
	const float *q[ATT_QB];         /* query rows [hd] (unused slots repeat row 0) */
	float *out[ATT_QB];             /* where each row's result goes */
	int64_t lo[ATT_QB], hi[ATT_QB]; /* each row's keys */
	int64_t glo, ghi;               /* the union of those ranges */
	float m[ATT_QB], l[ATT_QB];
	float s[ATT_QB][ATT_KB];
	float acc[ATT_QB][VLM_CPU_MAX_HEAD_DIM];
};

/* s[r][t] = q_r . k_t for rows r < g->n and t < nk (keys at k, row stride ld, or the same keys
 * packed by `pack` as kt [hd][ATT_KB]; the AVX2 kernel also fills the unused slots), and
 * acc[r] += sum_t s[r][t] v_t for r < g->n: the inner loops, per ISA. pack may be NULL (then kt
 * is too). */
struct att_kernels {
	void (*pack)(float *kt, const float *k, int64_t ld, int nk, int hd);
	void (*qk)(struct att_group *g, const float *k, int64_t ld, const float *kt, int nk,
		   int hd);
	void (*pv)(struct att_group *g, const float *v, int64_t ld, int nk, int hd);
	void (*exp_sub)(float *s, int nk, float m); /* s[t] = exp(s[t] - m) */
};

static void qk_portable(struct att_group *g, const float *k, int64_t ld, const float *kt, int nk,
			int hd)
{
	for (int r = 0; r < g->n; r++) {
		for (int t = 0; t < nk; t++) {
			float acc[8] = { 0 };
			int d = 0;
			for (; d + 8 <= hd; d += 8)
				for (int l = 0; l < 8; l++)
					acc[l] += g->q[r][d + l] * k[t * ld + d + l];
			for (; d < hd; d++)
				acc[0] += g->q[r][d] * k[t * ld + d];
			float sum = 0;
			for (int l = 0; l < 8; l++)
				sum += acc[l];
			g->s[r][t] = sum;
		}
	}
}

static void pv_portable(struct att_group *g, const float *v, int64_t ld, int nk, int hd)
{
	for (int r = 0; r < g->n; r++)
		for (int t = 0; t < nk; t++)
			for (int d = 0; d < hd; d++)
				g->acc[r][d] += g->s[r][t] * v[t * ld + d];
}

static void exp_sub_portable(float *s, int nk, float m)
{
	for (int t = 0; t < nk; t++)
		s[t] = expf(s[t] - m);
}

#if FAST_X86
/* kt[d][t] = k_t[d] for t < nk, zero for nk <= t < ATT_KB (padding keys score 0 and fall
 * outside every row's range): 8x8 blocks transposed in registers, the ragged edges one by one. */
AVX2 static void pack_kt_avx2(float *kt, const float *k, int64_t ld, int nk, int hd)
{
	int nk8 = nk & ~7, hd8 = hd & ~7;
	for (int t = 0; t < nk8; t += 8) {
		for (int d = 0; d < hd8; d += 8) {
			__m256 r0 = _mm256_loadu_ps(k + (t + 0) * ld + d),
			       r1 = _mm256_loadu_ps(k + (t + 1) * ld + d),
			       r2 = _mm256_loadu_ps(k + (t + 2) * ld + d),
			       r3 = _mm256_loadu_ps(k + (t + 3) * ld + d),
			       r4 = _mm256_loadu_ps(k + (t + 4) * ld + d),
			       r5 = _mm256_loadu_ps(k + (t + 5) * ld + d),
			       r6 = _mm256_loadu_ps(k + (t + 6) * ld + d),
			       r7 = _mm256_loadu_ps(k + (t + 7) * ld + d);
			__m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1),
			       u2 = _mm256_unpacklo_ps(r2, r3), u3 = _mm256_unpackhi_ps(r2, r3),
			       u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5),
			       u6 = _mm256_unpacklo_ps(r6, r7), u7 = _mm256_unpackhi_ps(r6, r7);
			__m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44),
			       v1 = _mm256_shuffle_ps(u0, u2, 0xee),
			       v2 = _mm256_shuffle_ps(u1, u3, 0x44),
			       v3 = _mm256_shuffle_ps(u1, u3, 0xee),
			       v4 = _mm256_shuffle_ps(u4, u6, 0x44),
			       v5 = _mm256_shuffle_ps(u4, u6, 0xee),
			       v6 = _mm256_shuffle_ps(u5, u7, 0x44),
			       v7 = _mm256_shuffle_ps(u5, u7, 0xee);
			float *o = kt + (int64_t)d * ATT_KB + t;
			_mm256_storeu_ps(o + 0 * ATT_KB, _mm256_permute2f128_ps(v0, v4, 0x20));
			_mm256_storeu_ps(o + 1 * ATT_KB, _mm256_permute2f128_ps(v1, v5, 0x20));
			_mm256_storeu_ps(o + 2 * ATT_KB, _mm256_permute2f128_ps(v2, v6, 0x20));
			_mm256_storeu_ps(o + 3 * ATT_KB, _mm256_permute2f128_ps(v3, v7, 0x20));
			_mm256_storeu_ps(o + 4 * ATT_KB, _mm256_permute2f128_ps(v0, v4, 0x31));
			_mm256_storeu_ps(o + 5 * ATT_KB, _mm256_permute2f128_ps(v1, v5, 0x31));
			_mm256_storeu_ps(o + 6 * ATT_KB, _mm256_permute2f128_ps(v2, v6, 0x31));
			_mm256_storeu_ps(o + 7 * ATT_KB, _mm256_permute2f128_ps(v3, v7, 0x31));
		}
		for (int d = hd8; d < hd; d++)
			for (int i = 0; i < 8; i++)
				kt[(int64_t)d * ATT_KB + t + i] = k[(t + i) * ld + d];
	}
	for (int d = 0; d < hd; d++)
		for (int t = nk8; t < ATT_KB; t++)
			kt[(int64_t)d * ATT_KB + t] = t < nk ? k[t * ld + d] : 0.0f;
}

/* Four query rows against 16 packed keys at a time: per dim 2 K^T loads, 4 query broadcasts,
 * 8 FMAs into accumulators that are already the scores (no horizontal sums). */
AVX2 static void qk_avx2(struct att_group *g, const float *k, int64_t ld, const float *kt, int nk,
			 int hd)
{
	const float *q0 = g->q[0], *q1 = g->q[1], *q2 = g->q[2], *q3 = g->q[3];
	for (int t = 0; t < nk; t += 16) {
		__m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,
		       c21 = c00, c30 = c00, c31 = c00;
		const float *b = kt + t;
		for (int d = 0; d < hd; d++, b += ATT_KB) {
			__m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
			__m256 a = _mm256_broadcast_ss(q0 + d);
			c00 = _mm256_fmadd_ps(a, b0, c00);
			c01 = _mm256_fmadd_ps(a, b1, c01);
			a = _mm256_broadcast_ss(q1 + d);
			c10 = _mm256_fmadd_ps(a, b0, c10);
			c11 = _mm256_fmadd_ps(a, b1, c11);
			a = _mm256_broadcast_ss(q2 + d);
			c20 = _mm256_fmadd_ps(a, b0, c20);
			c21 = _mm256_fmadd_ps(a, b1, c21);
			a = _mm256_broadcast_ss(q3 + d);
			c30 = _mm256_fmadd_ps(a, b0, c30);
			c31 = _mm256_fmadd_ps(a, b1, c31);
		}
		/* s rows hold ATT_KB scores and t + 16 <= ATT_KB (ATT_KB is a multiple of 16) */
		_mm256_storeu_ps(g->s[0] + t, c00);
		_mm256_storeu_ps(g->s[0] + t + 8, c01);
		_mm256_storeu_ps(g->s[1] + t, c10);
		_mm256_storeu_ps(g->s[1] + t + 8, c11);
		_mm256_storeu_ps(g->s[2] + t, c20);
		_mm256_storeu_ps(g->s[2] + t + 8, c21);
		_mm256_storeu_ps(g->s[3] + t, c30);
		_mm256_storeu_ps(g->s[3] + t + 8, c31);
	}
}

/* 16 dims of four rows stay in registers across all nk keys: per key 2 V loads, 4 broadcasts,
 * 8 FMAs. Rows beyond g->n accumulate into their own (unused) slots. */
AVX2 static void pv_avx2(struct att_group *g, const float *v, int64_t ld, int nk, int hd)
{
	int d = 0;
	for (; d + 16 <= hd; d += 16) {
		__m256 a00 = _mm256_loadu_ps(g->acc[0] + d),
		       a01 = _mm256_loadu_ps(g->acc[0] + d + 8),
		       a10 = _mm256_loadu_ps(g->acc[1] + d),
		       a11 = _mm256_loadu_ps(g->acc[1] + d + 8),
		       a20 = _mm256_loadu_ps(g->acc[2] + d),
		       a21 = _mm256_loadu_ps(g->acc[2] + d + 8),
		       a30 = _mm256_loadu_ps(g->acc[3] + d),
		       a31 = _mm256_loadu_ps(g->acc[3] + d + 8);
		for (int t = 0; t < nk; t++) {
			__m256 v0 = _mm256_loadu_ps(v + t * ld + d),
			       v1 = _mm256_loadu_ps(v + t * ld + d + 8);
			__m256 p = _mm256_broadcast_ss(&g->s[0][t]);
			a00 = _mm256_fmadd_ps(p, v0, a00);
			a01 = _mm256_fmadd_ps(p, v1, a01);
			p = _mm256_broadcast_ss(&g->s[1][t]);
			a10 = _mm256_fmadd_ps(p, v0, a10);
			a11 = _mm256_fmadd_ps(p, v1, a11);
			p = _mm256_broadcast_ss(&g->s[2][t]);
			a20 = _mm256_fmadd_ps(p, v0, a20);
			a21 = _mm256_fmadd_ps(p, v1, a21);
			p = _mm256_broadcast_ss(&g->s[3][t]);
			a30 = _mm256_fmadd_ps(p, v0, a30);
			a31 = _mm256_fmadd_ps(p, v1, a31);
		}
		_mm256_storeu_ps(g->acc[0] + d, a00);
		_mm256_storeu_ps(g->acc[0] + d + 8, a01);
		_mm256_storeu_ps(g->acc[1] + d, a10);
		_mm256_storeu_ps(g->acc[1] + d + 8, a11);
		_mm256_storeu_ps(g->acc[2] + d, a20);
		_mm256_storeu_ps(g->acc[2] + d + 8, a21);
		_mm256_storeu_ps(g->acc[3] + d, a30);
		_mm256_storeu_ps(g->acc[3] + d + 8, a31);
	}
	for (; d < hd; d++)
		for (int r = 0; r < ATT_QB; r++)
			for (int t = 0; t < nk; t++)
				g->acc[r][d] += g->s[r][t] * v[t * ld + d];
}

AVX2 static void exp_sub_avx2(float *s, int nk, float m)
{
	int t = 0;
	__m256 vm = _mm256_set1_ps(m);
	for (; t + 8 <= nk; t += 8)
		_mm256_storeu_ps(s + t, exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), vm)));
	for (; t < nk; t++)
		s[t] = expf(s[t] - m);
}
#endif

struct att_job {
	const struct vlm_cpu *cpu;
	const struct vlm_attn *a;
	struct att_kernels kern;
	int64_t n_qblocks; /* tasks per KV head (f32 path) or per head (bf16 path) */
	int groups;        /* f32 path: groups of ATT_QB rows per task, 1..ATT_GROUPS */
};

/* Row r's share of the key block [t0, t0 + nk): scores become probabilities relative to the
 * row's running maximum m (earlier blocks rescaled by exp(m_old - m_new)), zero outside the
 * row's own key range, and their sum is added to l. */
static void att_softmax_block(const struct att_job *j, struct att_group *g, int r, int64_t t0,
			      int nk, int hd, float scale)
{
	float *s = g->s[r];
	int a = (int)(g->lo[r] > t0 ? g->lo[r] - t0 : 0);
	int b = (int)(g->hi[r] < t0 + nk ? g->hi[r] - t0 : nk);
	if (a >= b) {
		memset(s, 0, sizeof(float) * (size_t)nk);
		return;
	}
	float bm = -INFINITY;
	for (int t = a; t < b; t++) {
		s[t] *= scale;
		bm = s[t] > bm ? s[t] : bm;
	}
	if (bm > g->m[r]) {
		float corr = expf(g->m[r] - bm);
		g->l[r] *= corr;
		for (int d = 0; d < hd; d++)
			g->acc[r][d] *= corr;
		g->m[r] = bm;
	}
	j->kern.exp_sub(s + a, b - a, g->m[r]);
	for (int t = a; t < b; t++)
		g->l[r] += s[t];
	memset(s, 0, sizeof(float) * (size_t)a);
	memset(s + b, 0, sizeof(float) * (size_t)(nk - b));
}

/* The keys [*lo, *hi) query row i sees: its segment, or the causal prefix. */
static void att_row_range(const struct vlm_attn *a, int64_t i, int64_t *lo, int64_t *hi)
{
	if (a->mask == VLM_ATTN_SEGMENTS) {
		int seg = 0;
		while (a->cu_seqlens[seg + 1] <= i)
			seg++;
		*lo = a->cu_seqlens[seg];
		*hi = a->cu_seqlens[seg + 1];
	} else {
		*lo = 0;
		*hi = a->past + i + 1;
	}
}

/* Fills group g with rows rho0 .. rho0 + g->n - 1 of KV head kvh and their key ranges. The rows
 * of a KV head are its G = n_head / n_kv_head query heads at every position, position-major (row
 * rho: position rho / G, head kvh G + rho % G), so under GQA the G heads that read the same keys
 * and values share their loads: a decode step's 16 heads of a group are one task, not 16. */
static void att_group_init(const struct vlm_attn *a, struct att_group *g, int kvh, int64_t rho0)
{
	int hd = a->head_dim, G = a->n_head / a->n_kv_head;
	int64_t rows = a->L * G;
	g->n = (int)(rows - rho0 < ATT_QB ? rows - rho0 : ATT_QB);
	g->glo = INT64_MAX;
	g->ghi = 0;
	for (int r = 0; r < ATT_QB; r++) {
		int64_t rho = rho0 + (r < g->n ? r : 0), i = rho / G;
		int64_t n = (int64_t)kvh * G + rho % G;
		g->q[r] = a->q + i * a->q_stride + n * hd;
		g->out[r] = a->out + (i * a->n_head + n) * hd;
		g->m[r] = -INFINITY;
		g->l[r] = 0;
		memset(g->acc[r], 0, sizeof(float) * (size_t)hd);
		if (r >= g->n)
			continue;
		att_row_range(a, i, &g->lo[r], &g->hi[r]);
		g->glo = g->lo[r] < g->glo ? g->lo[r] : g->glo;
		g->ghi = g->hi[r] > g->ghi ? g->hi[r] : g->ghi;
	}
}

/* One task: up to ATT_GROUPS groups of ATT_QB rows of one KV head (j->groups of them). Each block
 * of keys and values is loaded once (it stays in L2) and used by every group whose rows can see
 * it. */
static void att_task(void *ctx, int64_t task, int thread)
{
	const struct att_job *j = ctx;
	const struct vlm_attn *a = j->a;
	int hd = a->head_dim, kvh = (int)(task / j->n_qblocks);
	int64_t rows = a->L * (a->n_head / a->n_kv_head);
	int64_t rho0 = (task % j->n_qblocks) * ATT_QB * j->groups;
	float scale = 1.0f / sqrtf((float)hd);
	struct att_group groups[ATT_GROUPS];
	int n_groups = 0;
	int64_t lo = INT64_MAX, hi = 0;

	for (; n_groups < j->groups && rho0 + n_groups * ATT_QB < rows; n_groups++) {
		struct att_group *g = &groups[n_groups];
		att_group_init(a, g, kvh, rho0 + n_groups * ATT_QB);
		lo = g->glo < lo ? g->glo : lo;
		hi = g->ghi > hi ? g->ghi : hi;
	}
	float *kt =
		j->kern.pack ? j->cpu->scratch + (size_t)thread * vlm_fast_scratch_floats() : NULL;
	for (int64_t t0 = lo; t0 < hi; t0 += ATT_KB) {
		int nk = (int)min64(ATT_KB, hi - t0);
		int64_t off = t0 * a->kv_stride + (int64_t)kvh * hd;
		if (kt)
			j->kern.pack(kt, a->k + off, a->kv_stride, nk, hd);
		for (int gi = 0; gi < n_groups; gi++) {
			struct att_group *g = &groups[gi];
			if (g->ghi <= t0 || g->glo >= t0 + nk)
				continue;
			j->kern.qk(g, a->k + off, a->kv_stride, kt, nk, hd);
			for (int r = 0; r < g->n; r++)
				att_softmax_block(j, g, r, t0, nk, hd, scale);
			j->kern.pv(g, a->v + off, a->kv_stride, nk, hd);
		}
	}
	for (int gi = 0; gi < n_groups; gi++) {
		const struct att_group *g = &groups[gi];
		for (int r = 0; r < g->n; r++)
			for (int d = 0; d < hd; d++)
				g->out[r][d] = g->acc[r][d] / g->l[r];
	}
}

#if FAST_BF16
/* Attention with bf16 activations (the bf16 mode, AB_Q or more query rows): Q, K, V and the
 * probabilities rounded to bf16, products accumulated in f32 by mmb_kernel, the online softmax in
 * f32, as torch's bf16 scaled_dot_product_attention does. A task is AB_Q query rows of one head,
 * kept as two MB_NC-column W panels for the whole walk over the keys; so that every tile the
 * kernel reads is either such a panel or a row-major tile, the scores are computed transposed:
 * S^T [keys][queries] = K . Q^T with the key rows as the kernel's x rows, and the output as
 * O^T [dims][queries] = V^T . P^T with V^T as x rows (pairs along the keys) and P as panels. The
 * softmax then runs down the columns, eight queries per vector. */
enum {
	AB_Q = 2 * MB_NC, /* query rows per task: two kernel panels */
	AB_KB = 64,       /* keys per online-softmax block: whole x tiles of MB_MR rows, even */
	AB_HD = (VLM_CPU_MAX_HEAD_DIM + MB_MR - 1) / MB_MR * MB_MR,
};
_Static_assert(AB_KB % MB_MR == 0 && AB_Q % 8 == 0, "whole tiles and softmax vectors");

/* A task's scratch, carved from the thread's: words of bf16 pairs, or f32. */
struct attb_tiles {
	uint32_t *qp; /* Q^T panels [2][khd][MB_NC]: pair kk of query q is dims 2kk, 2kk + 1 */
	uint32_t *kx; /* the key block [AB_KB][khd], row-major pairs of dims */
	float *st;    /* S^T, then P^T: [AB_KB][AB_Q] */
	uint32_t *pp; /* P panels [2][AB_KB / 2][MB_NC]: pair kk of query q is keys 2kk, 2kk + 1 */
	uint32_t *
		vx; /* V^T as x rows, stored [AB_KB / 2][AB_HD]: pair kk of dim d is keys 2kk, 2kk+1 */
	float *ot; /* O^T accumulators [AB_HD][AB_Q] */
};

static size_t attb_scratch_floats(void)
{
	size_t khd = VLM_CPU_MAX_HEAD_DIM / 2;
	return 2 * khd * MB_NC + AB_KB * khd + (size_t)AB_KB * AB_Q + (size_t)AB_KB * MB_NC +
	       (size_t)AB_KB / 2 * AB_HD + (size_t)AB_HD * AB_Q;
}

static struct attb_tiles attb_tiles(float *scratch)
{
	size_t khd = VLM_CPU_MAX_HEAD_DIM / 2;
	struct attb_tiles t;
	t.qp = (uint32_t *)scratch;
	t.kx = t.qp + 2 * khd * MB_NC;
	t.st = (float *)(t.kx + AB_KB * khd);
	t.pp = (uint32_t *)(t.st + AB_KB * AB_Q);
	t.vx = t.pp + AB_KB * MB_NC;
	t.ot = (float *)(t.vx + AB_KB / 2 * AB_HD);
	return t;
}

static uint32_t bf16_pair(float lo, float hi)
{
	return (uint32_t)vlm_f32_to_bf16(lo) | (uint32_t)vlm_f32_to_bf16(hi) << 16;
}

/* The task's nq query rows (from i0, head n) as Q^T panels; missing queries are zero. Head dims
 * are even (ops.c), so dims pair up exactly. */
static void attb_pack_q(const struct vlm_attn *a, int n, int64_t i0, int nq, uint32_t *qp, int khd)
{
	int hd = a->head_dim;
	for (int q = 0; q < AB_Q; q++) {
		uint32_t *dst = qp + (q / MB_NC) * khd * MB_NC + q % MB_NC;
		const float *row = q < nq ? a->q + (i0 + q) * a->q_stride + (int64_t)n * hd : NULL;
		for (int kk = 0; kk < khd; kk++)
			dst[kk * MB_NC] = row ? bf16_pair(row[2 * kk], row[2 * kk + 1]) : 0;
	}
}

/* Keys [0, nk) of the block (rows at k, stride ld) as bf16 rows; rows up to the next whole tile
 * are zero. */
BF16 static void attb_pack_k(const float *k, int64_t ld, int nk, int hd, uint32_t *kx, int khd)
{
	for (int t = 0; t < nk; t++)
		round_row_bf16(k + t * ld, hd, (uint16_t *)(kx + t * khd));
	int nk8 = (nk + MB_MR - 1) / MB_MR * MB_MR;
	memset(kx + nk * khd, 0, sizeof(uint32_t) * (size_t)((nk8 - nk) * khd));
}

/* Values [0, nk) of the block as V^T x rows: word [kk][d] pairs keys 2kk and 2kk + 1 of dim d,
 * 16 dims per step; keys past nk and dims past hd are zero. */
BF16 static void attb_pack_v(const float *v, int64_t ld, int nk, int hd, uint32_t *vx)
{
	int hdp = (hd + MB_MR - 1) / MB_MR * MB_MR;
	for (int kk = 0; kk < (nk + 1) / 2; kk++) {
		const float *r0 = v + 2 * kk * ld, *r1 = 2 * kk + 1 < nk ? r0 + ld : NULL;
		uint32_t *dst = vx + kk * AB_HD;
		int d = 0;
		for (; d + 16 <= hd; d += 16) {
			__m512i lo = _mm512_cvtepu16_epi32(
				(__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0 + d)));
			__m512i hi = r1 ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(
						  _mm512_loadu_ps(r1 + d)))
					: _mm512_setzero_si512();
			_mm512_storeu_si512(dst + d,
					    _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
		}
		for (; d < hd; d++)
			dst[d] = bf16_pair(r0[d], r1 ? r1[d] : 0);
		for (; d < hdp; d++)
			dst[d] = 0;
	}
}

/* The block's scores in st (rows t < nk, columns q < AB_Q) become probabilities: scaled, keys
 * outside each query's [lo, hi) masked, the running maximum m and sum l updated, the O^T
 * columns rescaled by exp(m_old - m_new); then P goes into the panels as bf16 pairs of keys
 * (pairs past nk are zero). Eight queries per vector; exp256 of the f32 path. */
BF16 static void attb_softmax(struct attb_tiles *tt, int64_t t0, int nk, int hd, float scale,
			      const int32_t *lo, const int32_t *hi, float *m, float *l)
{
	const __m256 ninf = _mm256_set1_ps(-INFINITY), zero = _mm256_setzero_ps();
	for (int q = 0; q < AB_Q; q += 8) {
		__m256i vlo = _mm256_loadu_si256((const __m256i *)(lo + q)),
			vhi = _mm256_loadu_si256((const __m256i *)(hi + q));
		__m256 bm = ninf;
		for (int t = 0; t < nk; t++) {
			__m256i ti = _mm256_set1_epi32((int)(t0 + t));
			__m256 ok = _mm256_castsi256_ps(_mm256_andnot_si256(
				_mm256_cmpgt_epi32(vlo, ti), _mm256_cmpgt_epi32(vhi, ti)));
			__m256 s = _mm256_blendv_ps(
				ninf,
				_mm256_mul_ps(_mm256_loadu_ps(tt->st + t * AB_Q + q),
					      _mm256_set1_ps(scale)),
				ok);
			_mm256_storeu_ps(tt->st + t * AB_Q + q, s);
			bm = _mm256_max_ps(bm, s);
		}
		__m256 m_old = _mm256_loadu_ps(m + q), m_new = _mm256_max_ps(m_old, bm);
		/* a column with no key yet keeps m = -inf: use 0 so that no -inf - -inf appears */
		__m256 m_use =
			_mm256_blendv_ps(m_new, zero, _mm256_cmp_ps(m_new, ninf, _CMP_EQ_OQ));
		__m256 corr = exp256(_mm256_sub_ps(m_old, m_use));
		__m256 sum = _mm256_mul_ps(_mm256_loadu_ps(l + q), corr);
		for (int d = 0; d < hd; d++)
			_mm256_storeu_ps(
				tt->ot + d * AB_Q + q,
				_mm256_mul_ps(_mm256_loadu_ps(tt->ot + d * AB_Q + q), corr));
		for (int t = 0; t < nk; t++) {
			__m256 s = _mm256_loadu_ps(tt->st + t * AB_Q + q);
			__m256 p = _mm256_blendv_ps(exp256(_mm256_sub_ps(s, m_use)), zero,
						    _mm256_cmp_ps(s, ninf, _CMP_EQ_OQ));
			_mm256_storeu_ps(tt->st + t * AB_Q + q, p);
			sum = _mm256_add_ps(sum, p);
		}
		_mm256_storeu_ps(m + q, m_new);
		_mm256_storeu_ps(l + q, sum);
	}
	for (int kk = 0; kk < AB_KB / 2; kk++) {
		const float *r0 = tt->st + 2 * kk * AB_Q, *r1 = r0 + AB_Q;
		for (int q = 0; q < AB_Q; q += 16) {
			__m512 p0 = 2 * kk < nk ? _mm512_loadu_ps(r0 + q) : _mm512_setzero_ps();
			__m512 p1 = 2 * kk + 1 < nk ? _mm512_loadu_ps(r1 + q) : _mm512_setzero_ps();
			__m512i w = _mm512_or_si512(
				_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(p0)),
				_mm512_slli_epi32(
					_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(p1)),
					16));
			_mm512_storeu_si512(tt->pp + (q / MB_NC) * (AB_KB / 2) * MB_NC +
						    kk * MB_NC + q % MB_NC,
					    w);
		}
	}
}

/* One task: query rows [i0, i0 + AB_Q) of one head against every key block any of them sees. */
BF16 static void attb_task(void *ctx, int64_t task, int thread)
{
	const struct att_job *j = ctx;
	const struct vlm_attn *a = j->a;
	int hd = a->head_dim, khd = hd / 2, hdp = (hd + MB_MR - 1) / MB_MR * MB_MR;
	int n = (int)(task / j->n_qblocks), kvh = n / (a->n_head / a->n_kv_head);
	int64_t i0 = (task % j->n_qblocks) * AB_Q;
	int nq = (int)min64(AB_Q, a->L - i0);
	struct attb_tiles tt =
		attb_tiles(j->cpu->scratch + (size_t)thread * vlm_fast_scratch_floats());
	int32_t lo[AB_Q], hi[AB_Q];
	float m[AB_Q], l[AB_Q];
	int64_t tlo = INT64_MAX, thi = 0;
	for (int q = 0; q < AB_Q; q++) {
		int64_t r_lo = 0, r_hi = 0; /* missing queries see no key */
		if (q < nq)
			att_row_range(a, i0 + q, &r_lo, &r_hi);
		lo[q] = (int32_t)r_lo;
		hi[q] = (int32_t)r_hi;
		m[q] = -INFINITY;
		l[q] = 0;
		if (q < nq) {
			tlo = r_lo < tlo ? r_lo : tlo;
			thi = r_hi > thi ? r_hi : thi;
		}
	}
	attb_pack_q(a, n, i0, nq, tt.qp, khd);
	memset(tt.ot, 0, sizeof(float) * (size_t)hdp * AB_Q);
	float scale = 1.0f / sqrtf((float)hd);
	int panels = (nq + MB_NC - 1) / MB_NC;
	for (int64_t t0 = tlo; t0 < thi; t0 += AB_KB) {
		int nk = (int)min64(AB_KB, thi - t0);
		int64_t off = t0 * a->kv_stride + (int64_t)kvh * hd;
		attb_pack_k(a->k + off, a->kv_stride, nk, hd, tt.kx, khd);
		attb_pack_v(a->v + off, a->kv_stride, nk, hd, tt.vx);
		memset(tt.st, 0, sizeof(float) * (size_t)AB_KB * AB_Q);
		for (int t = 0; t < nk; t += MB_MR)
			for (int p = 0; p < panels; p++)
				mmb_kernel(tt.kx + t * khd, khd, 1, tt.qp + p * khd * MB_NC, khd,
					   tt.st + t * AB_Q + p * MB_NC, AB_Q,
					   (int)min64(MB_MR, nk - t), MB_NC);
		attb_softmax(&tt, t0, nk, hd, scale, lo, hi, m, l);
		for (int p = 0; p < panels; p++)
			for (int d = 0; d < hd; d += MB_MR)
				mmb_kernel(tt.vx + d, 1, AB_HD, tt.pp + p * (AB_KB / 2) * MB_NC,
					   (nk + 1) / 2, tt.ot + d * AB_Q + p * MB_NC, AB_Q,
					   (int)min64(MB_MR, hd - d), MB_NC);
	}
	for (int q = 0; q < nq; q++) {
		float *out = a->out + ((i0 + q) * a->n_head + n) * hd;
		for (int d = 0; d < hd; d++)
			out[d] = tt.ot[d * AB_Q + q] / l[q];
	}
}
#endif

void vlm_fast_attention(const struct vlm_cpu *cpu, const struct vlm_attn *a)
{
	struct att_job j = { .cpu = cpu,
			     .a = a,
			     .kern = { NULL, qk_portable, pv_portable, exp_sub_portable } };
#if FAST_BF16
	if (cpu->bf16 && a->L >= AB_Q / 2) {
		j.n_qblocks = (a->L + AB_Q - 1) / AB_Q;
		vlm_pool_run(cpu->pool, attb_task, &j, j.n_qblocks * a->n_head);
		return;
	}
#endif
#if FAST_X86
	if (cpu->avx2)
		j.kern = (struct att_kernels){ pack_kt_avx2, qk_avx2, pv_avx2, exp_sub_avx2 };
#endif
	/* As many groups per task as still leave every thread a task (a decode step has only
	 * n_kv_head x G rows). */
	int64_t rows = a->L * (a->n_head / a->n_kv_head), row_groups = (rows + ATT_QB - 1) / ATT_QB;
	int64_t per_task = row_groups * a->n_kv_head / cpu->n_threads;
	j.groups = (int)(per_task < 1 ? 1 : per_task > ATT_GROUPS ? ATT_GROUPS : per_task);
	j.n_qblocks = (row_groups + j.groups - 1) / j.groups;
	vlm_pool_run(cpu->pool, att_task, &j, j.n_qblocks * a->n_kv_head);
}
