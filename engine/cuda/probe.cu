// Device discovery for the CUDA backend. A missing driver or device is not an error for intake:
// it means "use the CPU", so every failure here reads as zero devices.
#include <cuda_runtime.h>

extern "C" int vlm_cuda_probe_devices(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError(); // clear the sticky "no driver" error for later callers
		return 0;
	}
	return n;
}
