/* intaked: the watched-folder daemon. Until the daemon lands (see the README's status) it only
 * reports its version, so packaging and the systemd unit can be exercised. */
#include <stdio.h>
#include <string.h>

#include "ex.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("intaked %s\n", vlm_version());
		return 0;
	}
	fprintf(stderr, "intaked %s: the daemon is not implemented yet; only --version works\n",
		vlm_version());
	return 1;
}
