/* The GPU smoke test: skipped (77) where no CUDA device is present or CUDA was not built;
 * otherwise checks that the backend sees a device. The CUDA op tests build on this pattern. */
#include "check.h"
#include "vlm.h"

int main(void)
{
	int n = vlm_cuda_device_count();
	if (n == 0) {
		printf("no CUDA device: skipped\n");
		return CHECK_SKIP;
	}
	CHECK(n > 0);
	return CHECK_DONE();
}
