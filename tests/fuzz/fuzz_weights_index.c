/* libFuzzer target: the sharded-weights index (model.safetensors.index.json) against the tiny
 * fixture's real shards. The input becomes the index of a scratch model directory whose shards
 * are links to the fixture's; vlm_weights_open must accept it only when it maps every expected
 * tensor to the shard that holds it, and must never open a file outside the directory. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "fuzz.h"
#include "weights.h"

static struct vlm_config cfg;
static char dir[] = "/tmp/intake-fuzz-weights-XXXXXX";
static char index_path[FUZZ_PATH_SIZE];

static const char *const shards[] = { "model-00001-of-00002.safetensors",
				      "model-00002-of-00002.safetensors" };

static void remove_dir(void)
{
	char path[FUZZ_PATH_SIZE];
	for (size_t i = 0; i < 2; i++)
		unlink(fuzz_path(path, dir, shards[i]));
	unlink(index_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char fixture[FUZZ_PATH_SIZE], from[FUZZ_PATH_SIZE], to[FUZZ_PATH_SIZE];
	fuzz_source_path(fixture, "tests/fixtures/tiny-glm4v");
	vlm_err err = { 0 };
	if (vlm_config_load(fixture, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(2);
	}
	if (!mkdtemp(dir))
		FUZZ_DIE("mkdtemp");
	atexit(remove_dir);
	fuzz_path(index_path, dir, "model.safetensors.index.json");
	for (size_t i = 0; i < 2; i++)
		if (symlink(fuzz_path(from, fixture, shards[i]), fuzz_path(to, dir, shards[i])) !=
		    0)
			FUZZ_DIE(to);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *fp = fopen(index_path, "wb");
	if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0)
		FUZZ_DIE(index_path);
	struct vlm_weights *w = NULL;
	vlm_err err = { 0 };
	int rc = vlm_weights_open(dir, &cfg, &w, &err);
	if (rc == 0) {
		FUZZ_CHECK(w != NULL && w->n_shards >= 1 && w->n_shards <= 2);
		FUZZ_CHECK(w->text.embed && w->text.lm_head && w->vision.patch_embed_w);
		FUZZ_CHECK(vlm_weights_bytes(w) > 0);
	} else {
		FUZZ_CHECK(w == NULL && rc == err.code && err.msg[0]);
		FUZZ_CHECK(strncmp(err.msg, "weights: ", 9) == 0 ||
			   strncmp(err.msg, "safetensors: ", 13) == 0);
	}
	vlm_weights_free(w);
	return 0;
}
