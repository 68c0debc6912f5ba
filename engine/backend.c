/* Backend discovery: the only C file that knows whether the CUDA backend was compiled in.
 * Everything CUDA-specific lives under cuda/. */
#include "vlm.h"

#ifdef INTAKE_HAVE_CUDA
int vlm_cuda_probe_devices(void); /* cuda/probe.cu */
#endif

int vlm_cuda_device_count(void)
{
#ifdef INTAKE_HAVE_CUDA
	return vlm_cuda_probe_devices();
#else
	return 0;
#endif
}
