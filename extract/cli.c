/* intake: the command-line interface. main() dispatches to one function per subcommand. */
#include <stdio.h>
#include <string.h>

#include "ex.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("intake %s\n", vlm_version());
		return 0;
	}
	fprintf(stderr, "usage: intake --version\n");
	return 2;
}
