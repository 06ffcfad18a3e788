/* ResNet feature backbone (resnet18/34/50/101/152, torchvision weights in safetensors): frames
 * -> ImageNet normalisation -> ResNet -> global average pool -> (n, dim) f32 per frame. The CPU
 * path chains the NHWC ops of resnet_conv.c over batches of frames; `--device cuda` hands the
 * same folded weights to the cuDNN twin in backbone_resnet_cuda.cu. One Backbone per thread:
 * run() reuses its activation buffers. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backbone_internal.h"
#include "resnet_internal.h"
#ifdef LMR_HAVE_RESNET_CUDA
#include "resnet_cuda.h"
#endif

#define CPU_BATCH 8   /* frames per forward: large GEMMs, activations ~ batch * 3 MB (resnet50, 224) */
#define GPU_BATCH 32

typedef struct {
    ResnetNet net;
    ResnetCpu cpu;
    int batch;
    float *buf[6]; /* input, x, out, t1, t2, shortcut: each batch * max activation */
    size_t buf_cap; /* floats per buffer */
#ifdef LMR_HAVE_RESNET_CUDA
    ResnetCuda *cuda;
#endif
} ResnetImpl;

static void resnet_close(Backbone *b)
{
    ResnetImpl *r = b->impl;
    if (!r)
        return;
#ifdef LMR_HAVE_RESNET_CUDA
    resnet_cuda_close(&r->cuda);
#endif
    for (int i = 0; i < 6; i++)
        free(r->buf[i]);
    resnet_cpu_free(&r->cpu);
    resnet_net_free(&r->net);
    free(r);
    b->impl = NULL;
}

static int buffers_reserve(ResnetImpl *r, int h, int w)
{
    size_t act = resnet_max_activation(&r->net, h, w), in = (size_t)h * w * 3;
    size_t need = (act > in ? act : in) * (size_t)r->batch;
    if (need <= r->buf_cap)
        return 0;
    for (int i = 0; i < 6; i++) {
        free(r->buf[i]);
        r->buf[i] = malloc(need * sizeof(float));
        if (!r->buf[i]) {
            r->buf_cap = 0;
            return LMR_ENOMEM;
        }
    }
    r->buf_cap = need;
    return 0;
}

/* One batch of nb frames through the network on the CPU; out (nb, dim). */
static int forward_cpu(ResnetImpl *r, const uint8_t *frames, int nb, int h, int w, float *out)
{
    ResnetNet *net = &r->net;
    float *in = r->buf[0], *x = r->buf[1], *y = r->buf[2], *t1 = r->buf[3], *t2 = r->buf[4], *sc = r->buf[5];
    int nt = r->cpu.n_threads;
    resnet_normalize_forward(in, frames, (size_t)nb * h * w, nt);
    LMR_TRY(resnet_conv_forward(&r->cpu, y, in, NULL, &net->stem, nb, h, w, 1));
    h = resnet_out_size(h, 7, 2, 3);
    w = resnet_out_size(w, 7, 2, 3);
    resnet_maxpool_forward(x, y, nb, h, w, net->stem.c_out, 3, 2, 1, nt);
    h = resnet_out_size(h, 3, 2, 1);
    w = resnet_out_size(w, 3, 2, 1);
    for (int i = 0; i < net->n_blocks; i++) {
        const ResnetBlock *blk = &net->blocks[i];
        const ResnetConv *last = net->bottleneck ? &blk->c3 : &blk->c2;
        const ResnetConv *strided = net->bottleneck ? &blk->c2 : &blk->c1;
        int oh = resnet_out_size(h, strided->k, strided->stride, strided->pad);
        int ow = resnet_out_size(w, strided->k, strided->stride, strided->pad);
        const float *shortcut = x;
        if (blk->has_ds) {
            LMR_TRY(resnet_conv_forward(&r->cpu, sc, x, NULL, &blk->ds, nb, h, w, 0));
            shortcut = sc;
        }
        LMR_TRY(resnet_conv_forward(&r->cpu, t1, x, NULL, &blk->c1, nb, h, w, 1));
        if (net->bottleneck) {
            LMR_TRY(resnet_conv_forward(&r->cpu, t2, t1, NULL, &blk->c2, nb, h, w, 1));
            LMR_TRY(resnet_conv_forward(&r->cpu, y, t2, shortcut, last, nb, oh, ow, 1));
        } else {
            LMR_TRY(resnet_conv_forward(&r->cpu, y, t1, shortcut, last, nb, oh, ow, 1));
        }
        float *tmp = x;
        x = y;
        y = tmp;
        h = oh;
        w = ow;
    }
    resnet_avgpool_forward(out, x, nb, h * w, net->dim);
    return 0;
}

static int resnet_run(Backbone *b, const uint8_t *frames, int n, int h, int w, float *out)
{
    ResnetImpl *r = b->impl;
    if (n < 0 || h < 1 || w < 1 || (n > 0 && (!frames || !out)))
        return LMR_FAIL(b, LMR_EINVAL, "%s: bad input (%d frames of %dx%d)", r->net.name, n, h, w);
#ifdef LMR_HAVE_RESNET_CUDA
    if (r->cuda)
        return n ? resnet_cuda_run(r->cuda, frames, n, h, w, out, b->last_error) : 0;
#endif
    if (buffers_reserve(r, h, w) < 0)
        return LMR_FAIL(b, LMR_ENOMEM, "%s: out of memory for a batch of %d frames of %dx%d", r->net.name,
                        r->batch, h, w);
    for (int i = 0; i < n; i += r->batch) {
        int nb = n - i < r->batch ? n - i : r->batch;
        int rc = forward_cpu(r, frames + (size_t)i * h * w * 3, nb, h, w, out + (size_t)i * r->net.dim);
        if (rc < 0)
            return LMR_FAIL(b, rc, "%s: forward of %d frames of %dx%d failed", r->net.name, nb, h, w);
    }
    return 0;
}

static const BackboneOps resnet_ops = {resnet_run, resnet_close};

int backbone_resnet_init(Backbone *b, const BackboneOpts *o)
{
    const char *dev = o->device ? o->device : "cpu";
    int cuda = 0, half = 0;
    if (strcmp(dev, "cuda") == 0 || strcmp(dev, "cuda:f32") == 0)
        cuda = 1;
    else if (strcmp(dev, "cuda:f16") == 0)
        cuda = half = 1;
    else if (strcmp(dev, "cpu") != 0)
        return LMR_FAIL(b, LMR_EINVAL, "unknown device '%s' (cpu, cuda, cuda:f32, cuda:f16)", dev);
#ifdef LMR_HAVE_RESNET_CUDA
    if (cuda) /* before reading the weights: a missing GPU is the first thing to say */
        LMR_TRY(resnet_cuda_available(b->last_error));
#else
    if (cuda)
        return LMR_FAIL(b, LMR_ENODEV, "device '%s': this lmr was built without CUDA (LMR_CUDA=OFF)", dev);
#endif
    ResnetImpl *r = calloc(1, sizeof *r);
    if (!r)
        return LMR_FAIL(b, LMR_ENOMEM, "out of memory");
    b->impl = r;
    b->ops = &resnet_ops;
    int rc = resnet_net_load(&r->net, o->name, o->weights, b->weights_checksum, b->last_error);
    if (rc < 0)
        goto fail;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    r->cpu.n_threads = o->threads > 0 ? o->threads : (cores > 0 ? (int)cores : 1);
    /* convolutions split their pixels over our own threads, each calling a single-threaded
     * sgemm: OpenBLAS's own pool would spin against ours (its count is per process) */
    openblas_set_num_threads(1);
    r->batch = o->batch > 0 ? o->batch : (cuda ? GPU_BATCH : CPU_BATCH);
    b->dim = r->net.dim;
#ifdef LMR_HAVE_RESNET_CUDA
    if (cuda) {
        rc = resnet_cuda_open(&r->cuda, &r->net, r->batch, half, b->last_error);
        if (rc < 0)
            goto fail;
        /* the GPU holds its own copy: drop the host weights, keep the shapes for messages */
        free(r->net.params);
        r->net.params = NULL;
    }
#else
    (void)half;
#endif
    return 0;
fail:
    resnet_close(b); /* leaves ops set and impl NULL: a second close is harmless */
    return rc;
}
