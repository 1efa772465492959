/*
 * seglosses native CPU kernels: softmax over channels fused with the soft confusion statistics
 * of a label-map target (forward), and the gradient of any function of those outputs with
 * respect to the logits (backward), each in one pass over the logits.
 *
 * Plain C99 + POSIX threads, no Python or PyTorch headers: the library is loaded with ctypes
 * (seglosses/_native/__init__.py) and given raw pointers of contiguous float32 / int64 tensors.
 * The Python side checks every shape, dtype and layout before calling.
 *
 * Layout: logits z and probabilities p are (N, C, S) row-major; labels lab (N, S) int64 in
 * [0, C); valid (N, S) float32 weights (NULL: every voxel counts).
 *
 * Forward outputs, per (n, c) in double:
 *   stats[n, c, 0] = tp    = sum_{i: l_i = c} v_i p_ic
 *   stats[n, c, 1] = sp    = sum_i v_i p_ic
 *   stats[n, c, 2] = sp2   = sum_i v_i p_ic^2
 *   stats[n, c, 3] = t2    = sum_{i: l_i = c} v_i p_ic^2
 *   stats[n, c, 4] = count = sum_{i: l_i = c} v_i
 * and, each only when its pointer is not NULL, the probabilities p (N, C, S), per voxel
 * nll[n, i] = -log p_{i, l_i} = log sum_c exp(z_ic - m_i) + m_i - z_{i l_i} (exact, no underflow),
 * and per voxel l1m[n, i] = sum_{c >= k0, c != l_i} log(1 - p_ic) (the negative-class part of a
 * one-vs-rest BCE, Combo loss; 1 - p accurate as p -> 1, see the forward worker).
 *
 * Backward: for upstream gradients gp (N, C, S, optional) of p, and per-(n, c) coefficients
 * a = dL/dsp, a2 = dL/dsp2, b = dL/dtp, e = dL/dt2, h (N, S, optional) = dL/dnll and
 * h2 (N, S, optional) = dL/dl1m (adds -h2 p_c / (1 - p_c) to q_ic for c >= k0, c != l_i, the
 * one class above 1/2 in closed form):
 *   q_ic = p_ic (gp_ic + v_i (a_c + 2 a2_c p_ic)) + [l_i = c] (v_i p_ic (b_c + 2 e_c p_ic) - h_i)
 *   dL/dz_ic = q_ic - p_ic sum_k q_ik
 * (q_ic = p_ic dL/dp_ic; the nll term contributes dL/dp_il = -h_i / p_il.) The probabilities
 * are read from the p that the forward stored (recomputing them from z instead was measured
 * slower: the exps cost more than the write and the read of p).
 *
 * exp and log are branch-free polynomial approximations (Cephes' expf, an atanh series for
 * log) so that the voxel loops vectorise; both are accurate to about 1 ulp in float32.
 */
#ifdef SL_PYTHON_MODULE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <float.h>
#include <math.h>
#if !defined(_WIN32)
#include <pthread.h>
#define SL_THREADS 1
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define SL_EXPORT __declspec(dllexport)
#else
#define SL_EXPORT __attribute__((visibility("default")))
#endif

/* x86-64 with GCC >= 8 on glibc: an AVX2 clone of each voxel loop, chosen at load time
   (ifunc); the default clone runs on any x86-64. Elsewhere: one portable version. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 8
#define SL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SL_CLONES
#endif

#if defined(__GNUC__)
#define SL_INLINE static inline __attribute__((always_inline))
#else
#define SL_INLINE static inline
#endif

#define BLOCK 256
#define NSTAT 5

SL_INLINE float sl_exp(float x) {
    /* exp(x) for x <= 0 (x is z - max): Cephes expf, range reduction by n = round(x / ln 2). */
    const float lo = -87.3f;
    float xc = x < lo ? lo : x;
    /* round to nearest with the 1.5 * 2^23 trick (floorf is a libm call without SSE4.1) */
    float fn = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float r2 = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r2 + r + 1.0f;
    int32_t ni = (int32_t)fn;
    union { int32_t i; float f; } u;
    u.i = (ni + 127) << 23;
    float out = y * u.f;
    return x < lo ? 0.0f : out;
}

SL_INLINE float sl_log(float x) {
    /* log(x) for x >= 1 (a softmax denominator): x = m 2^k with m in [sqrt(1/2), sqrt(2)),
       log m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172: series to t^11. */
    union { float f; int32_t i; } u;
    u.f = x;
    int32_t k = ((u.i >> 23) & 0xff) - 127;
    u.i = (u.i & 0x007fffff) | 0x3f800000; /* m in [1, 2) */
    float m = u.f;
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    k = big ? k + 1 : k;
    float t = (m - 1.0f) / (m + 1.0f);
    float t2 = t * t;
    float s = 1.0f / 11.0f;
    s = s * t2 + 1.0f / 9.0f;
    s = s * t2 + 1.0f / 7.0f;
    s = s * t2 + 1.0f / 5.0f;
    s = s * t2 + 1.0f / 3.0f;
    s = s * t2 + 1.0f;
    return 2.0f * t * s + (float)k * 0.693147180559945309f;
}

/* ------------------------------------------------------------------------------ threading */

typedef struct {
    int64_t n, c, s;
    const float *z;
    const int64_t *lab;
    const float *valid;
    float *p;
    float *nll;
    float *l1m;      /* per voxel sum_{c >= k0, c != l} log(1 - p_c) (one-vs-rest BCE), or NULL */
    int64_t k0;
    double *stats; /* per unit: NSTAT * c each, (n * nchunks) units */
    /* backward */
    const float *pin;
    const float *gp;
    const float *a, *a2, *b, *e, *h, *h2;
    float *grad;
    /* work split: units of (sample, chunk of voxels) */
    int64_t chunk, nchunks, unit0, unit1;
    int failed; /* a worker could not allocate its scratch buffer */
} sl_job;

typedef void (*sl_worker)(sl_job *);

/* Threads. PyTorch's CPU ops run on an OpenMP team whose idle threads busy-wait for a while
   after each parallel region; threads of our own would compete with them for the cores (on two
   cores this was measured to halve our speed right after any PyTorch op). So when the Python
   side finds the OpenMP runtime that PyTorch loaded, it hands us its GOMP_parallel entry point
   (the libgomp ABI, also exported by LLVM's and Intel's runtimes) and our work runs on
   PyTorch's own team. Otherwise: POSIX threads (or one thread on Windows). */
typedef void (*sl_gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
typedef int (*sl_omp_int_fn)(void);
static sl_gomp_parallel_fn sl_gomp_parallel = NULL;
static sl_omp_int_fn sl_omp_thread_num = NULL, sl_omp_num_threads = NULL;

SL_EXPORT int sl_set_openmp(void *parallel, void *thread_num, void *num_threads) {
    if (parallel && thread_num && num_threads) {
        sl_gomp_parallel = (sl_gomp_parallel_fn)parallel;
        sl_omp_thread_num = (sl_omp_int_fn)thread_num;
        sl_omp_num_threads = (sl_omp_int_fn)num_threads;
        return 1;
    }
    sl_gomp_parallel = NULL;
    sl_omp_thread_num = sl_omp_num_threads = NULL;
    return 0;
}

typedef struct {
    sl_worker fn;
    sl_job *jobs;
    int njobs;
} sl_team;

static void sl_team_body(void *arg) {
    sl_team *T = (sl_team *)arg;
    int t = sl_omp_thread_num(), k = sl_omp_num_threads();
    if (k < 1) k = 1;
    for (int i = t; i < T->njobs; i += k) T->fn(&T->jobs[i]); /* a smaller team than asked still does every job */
}

static int sl_run(sl_worker fn, sl_job *base, int nthreads) {
    /* Units are split into contiguous ranges, one job per thread. Every unit writes only its
       own outputs (and its own row of unit statistics), so the results do not depend on the
       number of threads. */
    int64_t units = base->n * base->nchunks;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > units) nthreads = (int)units;
#if !defined(SL_THREADS)
    if (!sl_gomp_parallel) nthreads = 1;
#endif
    if (nthreads <= 1) {
        base->unit0 = 0;
        base->unit1 = units;
        fn(base);
        return base->failed ? -1 : 0;
    }
    sl_job *jobs = (sl_job *)calloc((size_t)nthreads, sizeof(sl_job));
    if (!jobs) return -1;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = *base;
        jobs[t].unit0 = units * t / nthreads;
        jobs[t].unit1 = units * (t + 1) / nthreads;
    }
    if (sl_gomp_parallel) {
        sl_team team = {fn, jobs, nthreads};
        sl_gomp_parallel(sl_team_body, &team, (unsigned)nthreads, 0);
    } else {
#if defined(SL_THREADS)
        pthread_t *tid = (pthread_t *)calloc((size_t)nthreads, sizeof(pthread_t));
        int started = 0;
        if (tid) /* the caller is thread 0 */
            for (int t = 1; t < nthreads; t++) {
                if (pthread_create(&tid[t], NULL, (void *(*)(void *))fn, &jobs[t]) != 0) break;
                started = t;
            }
        fn(&jobs[0]);
        for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
        for (int t = started + 1; t < nthreads; t++) fn(&jobs[t]); /* threads that did not start */
        free(tid);
#endif
    }
    int failed = 0;
    for (int t = 0; t < nthreads; t++) failed |= jobs[t].failed;
    free(jobs);
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------------------- forward */

/* Softmax of one block of B <= BLOCK voxels into pb (C rows of stride BLOCK); also the row max
   m, the denominator sum (of exp(z - m)) and the true-class logit zl of each voxel. */
SL_INLINE void sl_block_softmax(const float *zn, int64_t S, int64_t C, int64_t j0, int64_t B, const float *lb,
                                float *pb, float *m, float *sum, float *zl) {
    const float *z0 = zn + j0;
#pragma omp simd
    for (int64_t j = 0; j < B; j++) { m[j] = z0[j]; sum[j] = 0.0f; zl[j] = 0.0f; }
    for (int64_t c = 1; c < C; c++) {
        const float *zc = zn + c * S + j0;
#pragma omp simd
        for (int64_t j = 0; j < B; j++) m[j] = zc[j] > m[j] ? zc[j] : m[j];
    }
    for (int64_t c = 0; c < C; c++) {
        const float *zc = zn + c * S + j0;
        float *pc = pb + c * BLOCK;
        const float fc = (float)c;
#pragma omp simd
        for (int64_t j = 0; j < B; j++) {
            float ev = sl_exp(zc[j] - m[j]);
            pc[j] = ev;
            sum[j] += ev;
            zl[j] = lb[j] == fc ? zc[j] : zl[j];
        }
    }
    float inv[BLOCK];
#pragma omp simd
    for (int64_t j = 0; j < B; j++) inv[j] = 1.0f / sum[j];
    for (int64_t c = 0; c < C; c++) {
        float *pc = pb + c * BLOCK;
#pragma omp simd
        for (int64_t j = 0; j < B; j++) pc[j] *= inv[j];
    }
}

/* Labels (as float, one element width in the vector loops) and voxel weights of one block. */
SL_INLINE void sl_block_labels(const sl_job *J, int64_t n, int64_t j0, int64_t B, float *lb, float *w) {
    const int64_t *lab = J->lab + n * J->s + j0;
    for (int64_t j = 0; j < B; j++) lb[j] = (float)(int32_t)lab[j]; /* in [0, C): exact; int32 vectorises */
    if (J->valid) {
        const float *v = J->valid + n * J->s + j0;
        for (int64_t j = 0; j < B; j++) w[j] = v[j];
    } else {
        for (int64_t j = 0; j < B; j++) w[j] = 1.0f;
    }
}

SL_CLONES static void *sl_forward_worker(sl_job *J) {
    const int64_t C = J->c, S = J->s;
    float m[BLOCK], sum[BLOCK], w[BLOCK], zl[BLOCK], lb[BLOCK];
    float *pb = (float *)malloc(sizeof(float) * (size_t)(C * BLOCK));
    if (!pb) { J->failed = 1; return NULL; }
    for (int64_t u = J->unit0; u < J->unit1; u++) {
        int64_t n = u / J->nchunks, ch = u % J->nchunks;
        int64_t s0 = ch * J->chunk, s1 = s0 + J->chunk < S ? s0 + J->chunk : S;
        const float *zn = J->z + n * C * S;
        double *st = J->stats + u * C * NSTAT;
        for (int64_t j0 = s0; j0 < s1; j0 += BLOCK) {
            int64_t B = s1 - j0 < BLOCK ? s1 - j0 : BLOCK;
            sl_block_labels(J, n, j0, B, lb, w);
            sl_block_softmax(zn, S, C, j0, B, lb, pb, m, sum, zl);
            for (int64_t c = 0; c < C; c++) {
                const float *pc = pb + c * BLOCK;
                const float fc = (float)c;
                float tp = 0.0f, sp = 0.0f, sp2 = 0.0f, t2 = 0.0f, cnt = 0.0f;
#pragma omp simd reduction(+ : tp, sp, sp2, t2, cnt)
                for (int64_t j = 0; j < B; j++) {
                    float pv = pc[j];
                    float pw = pv * w[j];
                    float hit = lb[j] == fc ? 1.0f : 0.0f;
                    sp += pw;
                    sp2 += pw * pv;
                    tp += hit * pw;
                    t2 += hit * pw * pv;
                    cnt += hit * w[j];
                }
                st[c * NSTAT + 0] += tp;
                st[c * NSTAT + 1] += sp;
                st[c * NSTAT + 2] += sp2;
                st[c * NSTAT + 3] += t2;
                st[c * NSTAT + 4] += cnt;
            }
            if (J->p) /* (outside the loop above: GCC would unswitch it on J->p and not vectorise a copy) */
                for (int64_t c = 0; c < C; c++)
                    memcpy(J->p + (n * C + c) * S + j0, pb + c * BLOCK, sizeof(float) * (size_t)B);
            if (J->l1m) {
                /* 1 - p_c: accurate as such where p_c <= 1/2; the one class a voxel may have
                   above 1/2 takes the sum of the others (no cancellation as p -> 1), clamped
                   at FLT_MIN (log >= -87.3, finite for logits of any magnitude). */
                float oth[BLOCK], acc[BLOCK];
#pragma omp simd
                for (int64_t j = 0; j < B; j++) { oth[j] = 0.0f; acc[j] = 0.0f; }
                for (int64_t c = 0; c < C; c++) {
                    const float *pc = pb + c * BLOCK;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) oth[j] += pc[j] > 0.5f ? 0.0f : pc[j];
                }
                for (int64_t c = J->k0; c < C; c++) {
                    const float *pc = pb + c * BLOCK;
                    const float fc = (float)c;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) {
                        float ot = oth[j] > FLT_MIN ? oth[j] : FLT_MIN;
                        float q = pc[j] > 0.5f ? ot : 1.0f - pc[j];
                        float lq = sl_log(q);
                        acc[j] += lb[j] == fc ? 0.0f : lq;
                    }
                }
                float *out = J->l1m + n * S + j0;
                for (int64_t j = 0; j < B; j++) out[j] = acc[j];
            }
            if (J->nll) {
                float *out = J->nll + n * S + j0;
#pragma omp simd
                for (int64_t j = 0; j < B; j++) out[j] = sl_log(sum[j]) + m[j] - zl[j];
            }
        }
    }
    free(pb);
    return NULL;
}

SL_EXPORT int sl_softmax_stats_forward(const float *z, const int64_t *lab, const float *valid, int64_t n, int64_t c,
                                       int64_t s, float *p, float *nll, float *l1m, int64_t k0, double *stats,
                                       int nthreads) {
    sl_job J;
    memset(&J, 0, sizeof(J));
    J.n = n; J.c = c; J.s = s; J.z = z; J.lab = lab; J.valid = valid; J.p = p; J.nll = nll; J.l1m = l1m; J.k0 = k0; J.stats = stats;
    J.chunk = 8192;
    J.nchunks = (s + J.chunk - 1) / J.chunk;
    memset(stats, 0, sizeof(double) * (size_t)(NSTAT * n * c));
    if (J.nchunks == 0) return 0;
    /* statistics per unit (sample, chunk of voxels), summed below in a fixed order: the same
       bits for any number of threads */
    double *units = (double *)calloc((size_t)(n * J.nchunks * c * NSTAT), sizeof(double));
    if (!units) return -1;
    J.stats = units;
    int rc = sl_run((sl_worker)sl_forward_worker, &J, nthreads);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < J.nchunks; ch++) {
            const double *src = units + (i * J.nchunks + ch) * c * NSTAT;
            for (int64_t k = 0; k < c * NSTAT; k++) stats[i * c * NSTAT + k] += src[k];
        }
    free(units);
    return rc;
}

/* ------------------------------------------------------------------------------ backward */

SL_CLONES static void *sl_backward_worker(sl_job *J) {
    const int64_t C = J->c, S = J->s;
    float w[BLOCK], lb[BLOCK], dot[BLOCK], hh[BLOCK];
    for (int64_t u = J->unit0; u < J->unit1; u++) {
        int64_t n = u / J->nchunks, ch = u % J->nchunks;
        int64_t s0 = ch * J->chunk, s1 = s0 + J->chunk < S ? s0 + J->chunk : S;
        const float *gpn = J->gp ? J->gp + n * C * S : NULL;
        float *gn = J->grad + n * C * S;
        const float *a = J->a + n * C, *a2 = J->a2 + n * C, *b = J->b + n * C, *e = J->e + n * C;
        for (int64_t j0 = s0; j0 < s1; j0 += BLOCK) {
            int64_t B = s1 - j0 < BLOCK ? s1 - j0 : BLOCK;
            sl_block_labels(J, n, j0, B, lb, w);
            const float *pbase = J->pin + n * C * S + j0;
            const int64_t pstride = S;
            if (J->h) {
                const float *hs = J->h + n * S + j0;
                for (int64_t j = 0; j < B; j++) hh[j] = hs[j];
            } else {
                for (int64_t j = 0; j < B; j++) hh[j] = 0.0f;
            }
#pragma omp simd
            for (int64_t j = 0; j < B; j++) dot[j] = 0.0f;
            for (int64_t c = 0; c < C; c++) {
                const float *pc = pbase + c * pstride;
                float *gc = gn + c * S + j0;
                const float fc = (float)c;
                const float ac = a[c], a2c = 2.0f * a2[c], bc = b[c], ec = 2.0f * e[c];
                if (gpn) {
                    const float *gpc = gpn + c * S + j0;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) {
                        float pv = pc[j];
                        float q = pv * (gpc[j] + w[j] * (ac + a2c * pv));
                        float lt = w[j] * pv * (bc + ec * pv) - hh[j];
                        q += lb[j] == fc ? lt : 0.0f;
                        gc[j] = q;
                        dot[j] += q;
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) {
                        float pv = pc[j];
                        float q = pv * w[j] * (ac + a2c * pv);
                        float lt = w[j] * pv * (bc + ec * pv) - hh[j];
                        q += lb[j] == fc ? lt : 0.0f;
                        gc[j] = q;
                        dot[j] += q;
                    }
                }
            }
            float h2[BLOCK], pt[BLOCK], ft[BLOCK], oth[BLOCK];
            if (J->h2) {
                /* one-vs-rest BCE: dL/dp_c = -h2 / (1 - p_c) for c >= k0, c != l. Classes with
                   p_c <= 1/2 enter q = p dL/dp as usual (|p / (1 - p)| <= 1); the one class t a
                   voxel may have above 1/2 (found in the same loop) is added in closed form in
                   the last loop. */
                const float *hs = J->h2 + n * S + j0;
#pragma omp simd
                for (int64_t j = 0; j < B; j++) { h2[j] = hs[j]; pt[j] = 0.0f; ft[j] = -1.0f; oth[j] = 0.0f; }
                for (int64_t c = 0; c < C; c++) {
                    const float *pc = pbase + c * pstride;
                    float *gc = gn + c * S + j0;
                    const float fc = (float)c;
                    const float kept = c >= J->k0 ? 1.0f : 0.0f;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) {
                        float pv = pc[j];
                        int top = pv > 0.5f;
                        float r = top ? 0.0f : -h2[j] * pv / (1.0f - pv);
                        r = lb[j] == fc ? 0.0f : kept * r;
                        gc[j] += r;
                        dot[j] += r;
                        oth[j] += top ? 0.0f : pv;
                        pt[j] = top ? pv : pt[j];
                        ft[j] = top ? fc : ft[j];
                    }
                }
                /* the top class t (p_t > 1/2, t >= k0, t != l), with q_t = 1 - p_t = sum of the
                   other p (clamped as in the forward) and Q_t = -h2 p_t / q_t:
                   dz_t += Q_t (1 - p_t) = -h2 p_t,  dz_c += -p_c Q_t = h2 p_t (p_c / q_t)  (p_c <= q_t) */
                const float fk0 = (float)J->k0;
#pragma omp simd
                for (int64_t j = 0; j < B; j++) {
                    int active = ft[j] >= fk0 && ft[j] != lb[j];
                    float ot = oth[j] > FLT_MIN ? oth[j] : FLT_MIN;
                    pt[j] = active ? h2[j] * pt[j] : 0.0f; /* h2 p_t */
                    oth[j] = 1.0f / ot;                     /* 1 / q_t */
                }
                for (int64_t c = 0; c < C; c++) {
                    const float *pc = pbase + c * pstride;
                    float *gc = gn + c * S + j0;
                    const float fc = (float)c;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++)
                        gc[j] += ft[j] == fc ? -pt[j] - pc[j] * dot[j] : pc[j] * (pt[j] * oth[j] - dot[j]);
                }
            } else {
                for (int64_t c = 0; c < C; c++) {
                    const float *pc = pbase + c * pstride;
                    float *gc = gn + c * S + j0;
#pragma omp simd
                    for (int64_t j = 0; j < B; j++) gc[j] -= pc[j] * dot[j];
                }
            }
        }
    }
    return NULL;
}

SL_EXPORT int sl_softmax_stats_backward(const float *p, const int64_t *lab, const float *valid, int64_t n, int64_t c,
                                        int64_t s, const float *gp, const float *a, const float *a2, const float *b,
                                        const float *e, const float *h, const float *h2, int64_t k0, float *grad,
                                        int nthreads) {
    sl_job J;
    memset(&J, 0, sizeof(J));
    J.n = n; J.c = c; J.s = s; J.pin = p; J.lab = lab; J.valid = valid; J.gp = gp;
    J.a = a; J.a2 = a2; J.b = b; J.e = e; J.h = h; J.h2 = h2; J.k0 = k0; J.grad = grad;
    J.chunk = 8192;
    J.nchunks = (s + J.chunk - 1) / J.chunk;
    if (J.nchunks == 0) return 0;
    return sl_run((sl_worker)sl_backward_worker, &J, nthreads);
}

SL_EXPORT int sl_abi_version(void) { return 2; }

#ifdef SL_PYTHON_MODULE
/* An (empty) extension module, so that setuptools can build and install the library like any
   other; the kernels are called through ctypes (seglosses/_native/__init__.py). */
static struct PyModuleDef sl_module = {PyModuleDef_HEAD_INIT, "_kernels",
                                       "seglosses' compiled CPU kernels (called through ctypes).", -1, NULL};
PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&sl_module); }
#endif
