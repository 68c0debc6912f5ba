/* libFuzzer target: intaked's configuration loader (YAML, sizes, durations, paths, inboxes).
 * Every refusal must be reported, one line per problem, with -EINVAL. */
#include <errno.h>
#include <string.h>

#include "daemon/config.h"
#include "fuzz.h"

static void count_report(void *user, const char *msg)
{
	FUZZ_CHECK(msg[0] != '\0' && !strchr(msg, '\n'));
	(*(int *)user)++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_memfile(data, size);
	struct config *cfg = NULL;
	int n_reports = 0;
	vlm_err err = { 0 };
	int rc = config_load(path, &cfg, count_report, &n_reports, &err);
	if (rc == 0) {
		FUZZ_CHECK(cfg != NULL && n_reports == 0);
		FUZZ_CHECK(cfg->outbox && cfg->outbox[0] == '/');
		for (size_t i = 0; i < cfg->n_inboxes; i++)
			FUZZ_CHECK(cfg->inboxes[i].name && cfg->inboxes[i].path[0] == '/');
		FUZZ_CHECK(cfg->workers >= 1);
	} else {
		FUZZ_CHECK(cfg == NULL && rc == -EINVAL && n_reports >= 1);
		FUZZ_CHECK(err.msg[0] != '\0');
	}
	config_free(cfg);
	return 0;
}
