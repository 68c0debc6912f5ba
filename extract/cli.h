/* The intake CLI's subcommands: each cmd_* takes the arguments after its name (argv[0] is the
 * subcommand itself) and returns the process exit status. */
#ifndef INTAKE_CLI_H
#define INTAKE_CLI_H

#include <stdbool.h>
#include <stdint.h>

enum { EXIT_OK = 0, EXIT_INTERNAL = 1, EXIT_REFUSED = 2 };

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

int cmd_model(int argc, char **argv);   /* cli_model.c */
int cmd_extract(int argc, char **argv); /* cli_extract.c */

/* Parses a positive decimal integer no larger than max. */
bool cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Parses --precision: "f32" (false) or "bf16" (true: bf16 activations in prefill matmuls). */
bool cli_parse_precision(const char *s, bool *bf16);

#endif
