/* `intake model ...`: inspect a model directory (info) and try it on documents (generate). Both go
 * through the engine's public interface only (vlm.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ex.h"

static const char model_usage[] =
	"usage: intake model pull [REPO] [--revision REV] [--dir DIR] [--offline]\n"
	"       intake model verify DIR\n"
	"       intake model info DIR\n"
	"       intake model generate DIR --prompt TEXT [--image FILE]... [options]\n"
	"\n"
	"DIR is a model directory as published on the Hugging Face hub (config.json, safetensors\n"
	"shards with their index, tokenizer.json, ...).\n"
	"\n"
	"pull      downloads REPO (default " EX_MODEL_DEFAULT_REPO ") at REV (default main)\n"
	"          into DIR (default $INTAKE_MODEL_DIR, else /var/lib/intake/models/OWNER--NAME),\n"
	"          checks every file's hash, resumes interrupted downloads and writes\n"
	"          DIR/" EX_MODEL_MANIFEST " last. Environment: HF_ENDPOINT (a mirror), HF_TOKEN\n"
	"          (gated or private repositories), HTTPS_PROXY/NO_PROXY, HF_HUB_OFFLINE=1 (same "
	"as\n"
	"          --offline: verify what DIR holds, never touch the network)\n"
	"verify    recomputes the hashes against the manifest, checks every tensor the engine\n"
	"          needs, and prints the pinned model id results carry\n"
	"info      architecture, sizes, memory needed and token ids\n"
	"generate  runs the model on the pages of each --image document (PDF, TIFF, JPEG, PNG)\n"
	"          with the prompt, thinking disabled, and prints the answer as it is generated\n"
	"\n"
	"generate options:\n"
	"  --max-tokens N    stop after N tokens (default 512)\n"
	"  --threads N       CPU threads (default: all)\n"
	"  --ctx N           context size in tokens (default 8192, or the model's maximum)\n"
	"  --temperature T   sample with temperature T (default: greedy)\n"
	"  --top-p P         nucleus sampling (with --temperature; default 1)\n"
	"  --top-k K         top-k sampling (with --temperature; default off)\n"
	"  --seed S          random seed for sampling (default 0)\n"
	"  --trace DIR       dump every named intermediate tensor to DIR (NAME.f32, index.tsv)\n"
	"  --precision P     f32 (default: matches transformers' f32 run) or bf16 (matmuls and\n"
	"                    attention on bf16-rounded activations, prefill 2-4x as fast; needs\n"
	"                    a CPU with AVX512_BF16)\n"
	"\n"
	"Exit status: 0 success, 2 bad usage or a refused input, 1 failure (network, checksum,\n"
	"disk, memory).\n";

static void print_model_check(const char *dir, const struct ex_model_check *c)
{
	char size[32];
	snprintf(size, sizeof size, "%.1f MiB", (double)c->n_bytes / (1 << 20));
	if (c->pinned)
		printf("%s: %zu files (%s) match the manifest\n", dir, c->n_files, size);
	else
		printf("%s: no %s: hashes not checked (copied by hand?)\n", dir, EX_MODEL_MANIFEST);
	printf("%s: %zu tensors with the expected shapes (%lld parameters)\n", dir, c->n_tensors,
	       (long long)c->n_params);
	printf("model id: %s\n", c->model_id);
}

static int model_pull(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "revision", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "offline", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ex_pull_opts o = { .repo = EX_MODEL_DEFAULT_REPO,
				  .revision = "main",
				  .progress = isatty(STDERR_FILENO) };
	int c;
	while ((c = getopt_long(argc, argv, "r:d:oh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o.revision = optarg;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'o':
			o.offline = true;
			break;
		case 'h':
			fputs(model_usage, stdout);
			return EXIT_OK;
		default:
			fputs(model_usage, stderr);
			return EXIT_REFUSED;
		}
	}
	if (optind < argc)
		o.repo = argv[optind++];
	if (optind != argc) {
		fputs(model_usage, stderr);
		return EXIT_REFUSED;
	}
	vlm_err err = { 0 };
	char dir[4096];
	if (!o.dir && ex_model_default_dir(o.repo, dir, sizeof dir, &err) == 0)
		o.dir = dir;
	struct ex_model_check check;
	int rc = o.dir ? ex_model_pull(&o, &check, &err) : err.code;
	if (rc < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return rc == -EINVAL ? EXIT_REFUSED : EXIT_INTERNAL;
	}
	print_model_check(o.dir, &check);
	return EXIT_OK;
}

static int model_verify(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		fputs(model_usage, stdout);
		return EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(model_usage, stderr);
		return EXIT_REFUSED;
	}
	vlm_err err = { 0 };
	struct ex_model_check check;
	if (ex_model_verify(argv[1], &check, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return EXIT_INTERNAL;
	}
	print_model_check(argv[1], &check);
	return EXIT_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int load_model(const char *dir, int n_threads, bool bf16, struct vlm_model **m)
{
	vlm_err err = { 0 };
	struct vlm_model_opts opts = { .n_threads = n_threads, .bf16_activations = bf16 };
	if (vlm_model_load(dir, &opts, m, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return err.code == -ENOMEM ? EXIT_INTERNAL : EXIT_REFUSED;
	}
	return EXIT_OK;
}

static void print_size(const char *label, double bytes)
{
	printf("%-22s %.2f GiB (%.0f bytes)\n", label, bytes / (1u << 30), bytes);
}

static int model_info(int argc, char **argv)
{
	if (argc != 2) {
		fputs(model_usage, stderr);
		return EXIT_REFUSED;
	}
	struct vlm_model *m = NULL;
	int rc = load_model(argv[1], 1, false, &m);
	if (rc != EXIT_OK)
		return rc;
	struct vlm_model_info i;
	vlm_model_get_info(m, &i);
	printf("%-22s %s\n", "architecture", i.architecture);
	printf("%-22s %d layers, hidden %d, %d heads (%d KV), head dim %d, MLP %d, vocab %d\n",
	       "text decoder", i.text_layers, i.text_hidden, i.text_heads, i.text_kv_heads,
	       i.text_head_dim, i.text_intermediate, i.vocab_size);
	printf("%-22s %d layers, hidden %d, %d heads, patch %d, merge %d\n", "vision tower",
	       i.vision_layers, i.vision_hidden, i.vision_heads, i.patch_size, i.merge_size);
	double unit = i.n_params >= 1000000000 ? 1e9 : 1e6;
	const char *u = unit == 1e9 ? "B" : "M";
	printf("%-22s %.3f %s (vision %.3f %s, text %.3f %s)\n", "parameters", i.n_params / unit, u,
	       i.n_params_vision / unit, u, i.n_params_text / unit, u);
	printf("%-22s %s\n", "weights dtype", i.weight_dtype);
	print_size("weights (mmapped)", (double)i.weight_bytes);
	/* The CPU backend keeps its KV cache in f32, twice the bf16 figure. */
	print_size("KV cache per 1k tok", 2.0 * (double)i.kv_bytes_per_token * 1024);
	print_size("memory for 8k ctx", (double)i.weight_bytes + 2.0 * i.kv_bytes_per_token * 8192);
	printf("%-22s %d tokens\n", "max context", i.max_context);
	printf("%-22s theta %g, rotary dim %d, M-RoPE sections %d/%d/%d\n", "rope", i.rope_theta,
	       i.rotary_dim, i.mrope_section[0], i.mrope_section[1], i.mrope_section[2]);
	printf("%-22s image %d, begin %d, end %d; stop", "token ids", i.image_token_id,
	       i.image_start_id, i.image_end_id);
	for (int k = 0; k < i.n_eos_ids; k++)
		printf(" %d", i.eos_ids[k]);
	printf("\n%-22s %lld .. %lld pixels per image\n", "image budget",
	       (long long)i.min_pixels / 2, (long long)i.max_pixels / 2);
	vlm_model_free(m);
	return EXIT_OK;
}

struct trace_dump {
	const char *dir;
	FILE *index;
	int error; /* first errno, reported once at the end */
};

static void dump_tensor(void *user, const char *name, const float *data, int64_t rows, int64_t cols)
{
	struct trace_dump *t = user;
	char path[4096];
	if (t->error)
		return;
	snprintf(path, sizeof path, "%s/%s.f32", t->dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, sizeof *data, (size_t)(rows * cols), f) != (size_t)(rows * cols))
		t->error = errno ? errno : EIO;
	if (f && fclose(f) != 0 && !t->error)
		t->error = errno;
	fprintf(t->index, "%s\t%lld\t%lld\n", name, (long long)rows, (long long)cols);
}

static void print_token(void *user, int32_t token, float logprob, const char *text, size_t len)
{
	fwrite(text, 1, len, stdout);
	fflush(stdout);
}

/* Every page of every --image document, as engine images borrowing the documents' pixels. */
struct inputs {
	struct ex_doc **docs;
	int n_docs;
	struct vlm_image *images;
	int n_images;
};

static int load_inputs(char **paths, int n, struct inputs *in)
{
	in->docs = calloc((size_t)n + 1, sizeof *in->docs);
	if (!in->docs)
		return EXIT_INTERNAL;
	for (int d = 0; d < n; d++) {
		vlm_err err = { 0 };
		if (ex_doc_load(paths[d], NULL, &in->docs[d], &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return ex_reason_is_refusal(err.reason) ? EXIT_REFUSED : EXIT_INTERNAL;
		}
		in->n_docs++;
		struct vlm_image *grown =
			realloc(in->images,
				(size_t)(in->n_images + (int)in->docs[d]->n_pages) * sizeof *grown);
		if (!grown)
			return EXIT_INTERNAL;
		in->images = grown;
		for (size_t p = 0; p < in->docs[d]->n_pages; p++) {
			const struct ex_page *pg = &in->docs[d]->pages[p];
			in->images[in->n_images++] =
				(struct vlm_image){ pg->rgb, pg->width, pg->height };
		}
	}
	return EXIT_OK;
}

static void free_inputs(struct inputs *in)
{
	for (int d = 0; d < in->n_docs; d++)
		ex_doc_free(in->docs[d]);
	free(in->docs);
	free(in->images);
}

static int model_generate(int argc, char **argv)
{
	enum {
		OPT_MAX = 256,
		OPT_THREADS,
		OPT_CTX,
		OPT_TEMP,
		OPT_TOP_P,
		OPT_TOP_K,
		OPT_SEED,
		OPT_TRACE,
		OPT_PRECISION
	};
	static const struct option opts[] = {
		{ "prompt", required_argument, NULL, 'p' },
		{ "image", required_argument, NULL, 'i' },
		{ "max-tokens", required_argument, NULL, OPT_MAX },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "ctx", required_argument, NULL, OPT_CTX },
		{ "temperature", required_argument, NULL, OPT_TEMP },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "trace", required_argument, NULL, OPT_TRACE },
		{ "precision", required_argument, NULL, OPT_PRECISION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct vlm_request req = {
		.max_tokens = 512, .top_p = 1, .repetition_penalty = 1, .on_token = print_token
	};
	char **images = calloc((size_t)argc, sizeof *images);
	int n_images = 0, c;
	uint64_t threads = 0, ctx = 0, v;
	const char *trace_dir = NULL;
	bool bf16 = false;
	if (!images)
		return EXIT_INTERNAL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:i:h", opts, NULL)) != -1) {
		bool ok = true;
		char *end = NULL;
		switch (c) {
		case 'p':
			req.prompt = optarg;
			break;
		case 'i':
			images[n_images++] = optarg;
			break;
		case OPT_MAX:
			ok = cli_parse_u64(optarg, 1 << 20, &v);
			req.max_tokens = (int)v;
			break;
		case OPT_THREADS:
			ok = cli_parse_u64(optarg, 1024, &threads);
			break;
		case OPT_CTX:
			ok = cli_parse_u64(optarg, 1 << 24, &ctx);
			break;
		case OPT_TEMP:
			req.sample = true;
			req.temperature = strtof(optarg, &end);
			ok = *end == '\0' && req.temperature > 0;
			break;
		case OPT_TOP_P:
			req.top_p = strtof(optarg, &end);
			ok = *end == '\0' && req.top_p > 0 && req.top_p <= 1;
			break;
		case OPT_TOP_K:
			ok = cli_parse_u64(optarg, 1 << 20, &v);
			req.top_k = (int)v;
			break;
		case OPT_SEED:
			errno = 0;
			req.seed = strtoull(optarg, &end, 10);
			ok = !errno && *end == '\0';
			break;
		case OPT_TRACE:
			trace_dir = optarg;
			break;
		case OPT_PRECISION:
			ok = cli_parse_precision(optarg, &bf16);
			break;
		case 'h':
			fputs(model_usage, stdout);
			free(images);
			return EXIT_OK;
		default:
			free(images);
			fputs(model_usage, stderr);
			return EXIT_REFUSED;
		}
		if (!ok) {
			fprintf(stderr, "intake model generate: invalid value '%s'\n", optarg);
			free(images);
			return EXIT_REFUSED;
		}
	}
	if (optind != argc - 1 || !req.prompt) {
		fputs(model_usage, stderr);
		free(images);
		return EXIT_REFUSED;
	}

	struct inputs in = { 0 };
	struct vlm_model *m = NULL;
	struct vlm_session *s = NULL;
	struct vlm_result res = { 0 };
	struct trace_dump dump = { .dir = trace_dir };
	vlm_err err = { 0 };
	double t0 = now_s();
	int rc = load_inputs(images, n_images, &in);
	if (rc == EXIT_OK)
		rc = load_model(argv[optind], (int)threads, bf16, &m);
	if (rc != EXIT_OK)
		goto out;
	if (trace_dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/index.tsv", trace_dir);
		if ((mkdir(trace_dir, 0777) < 0 && errno != EEXIST) ||
		    !(dump.index = fopen(path, "w"))) {
			fprintf(stderr, "intake: trace directory '%s': %s\n", trace_dir,
				strerror(errno));
			rc = EXIT_REFUSED;
			goto out;
		}
		vlm_model_set_trace(m, &(struct vlm_trace){ dump_tensor, &dump });
	}
	double t_load = now_s();
	if (!ctx) {
		struct vlm_model_info info;
		vlm_model_get_info(m, &info);
		ctx = info.max_context < 8192 ? (uint64_t)info.max_context : 8192;
	}
	if (vlm_session_new(m, (int64_t)ctx, &s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		rc = err.code == -ENOMEM ? EXIT_INTERNAL : EXIT_REFUSED;
		goto out;
	}
	req.images = in.images;
	req.n_images = in.n_images;
	if (vlm_generate(s, &req, &res, &err) < 0) {
		fprintf(stderr, "\n%s\n", err.msg);
		rc = err.code == -ENOMEM ? EXIT_INTERNAL : EXIT_REFUSED;
		goto out;
	}
	double t_end = now_s();
	printf("\n");
	fprintf(stderr,
		"[%d image(s), %lld prompt tokens, %zu generated (%s); load %.2f s, "
		"generate %.2f s]\n",
		in.n_images, (long long)res.n_prompt_tokens, res.n_tokens,
		res.stop == VLM_STOP_EOS      ? "stop token"
		: res.stop == VLM_STOP_LENGTH ? "--max-tokens"
					      : "aborted",
		t_load - t0, t_end - t_load);
	if (dump.error) {
		fprintf(stderr, "intake: trace directory '%s': %s\n", trace_dir,
			strerror(dump.error));
		rc = EXIT_INTERNAL;
	}
out:
	if (dump.index)
		fclose(dump.index);
	vlm_result_done(&res);
	vlm_session_free(s);
	vlm_model_free(m);
	free_inputs(&in);
	free(images);
	return rc;
}

int cmd_model(int argc, char **argv)
{
	static const struct command sub[] = {
		{ "pull", model_pull, "download a model from the Hugging Face hub and verify it" },
		{ "verify", model_verify, "check a model directory's hashes and tensors" },
		{ "info", model_info, "architecture, sizes, memory needed, token ids" },
		{ "generate", model_generate, "run the model on documents with a prompt" },
	};
	for (size_t i = 0; argc > 1 && i < sizeof sub / sizeof sub[0]; i++)
		if (strcmp(argv[1], sub[i].name) == 0)
			return sub[i].run(argc - 1, argv + 1);
	bool help = argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
	fputs(model_usage, help ? stdout : stderr);
	return help ? EXIT_OK : EXIT_REFUSED;
}
