/* A view of one tensor: dtype, shape and a borrowed pointer to its data (usually inside an mmapped
 * safetensors shard, so it is never freed through this struct). Shared by the loader
 * (safetensors.c, weights.c) and the ops (ops.h, cpu/), which accept bf16, f16 or f32 weights and
 * compute in f32. Shapes follow safetensors/PyTorch order: shape[0] is the slowest axis. */
#ifndef VLM_TENSOR_H
#define VLM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum vlm_dtype {
	VLM_DTYPE_F32,
	VLM_DTYPE_F16,
	VLM_DTYPE_BF16,
	VLM_DTYPE_I64,
	VLM_DTYPE_I32,
	VLM_DTYPE_U8,
	VLM_DTYPE_I8,
	VLM_DTYPE_I16,
	VLM_DTYPE_F64,
	VLM_DTYPE_BOOL,
	VLM_DTYPE_COUNT
};

/* Names are the safetensors spellings; sizes in bytes per element. */
struct vlm_dtype_info {
	const char *name;
	size_t size;
};

static inline const struct vlm_dtype_info *vlm_dtype_info(enum vlm_dtype dtype)
{
	static const struct vlm_dtype_info table[] = {
		[VLM_DTYPE_F32] = { "F32", 4 },   [VLM_DTYPE_F16] = { "F16", 2 },
		[VLM_DTYPE_BF16] = { "BF16", 2 }, [VLM_DTYPE_I64] = { "I64", 8 },
		[VLM_DTYPE_I32] = { "I32", 4 },   [VLM_DTYPE_U8] = { "U8", 1 },
		[VLM_DTYPE_I8] = { "I8", 1 },     [VLM_DTYPE_I16] = { "I16", 2 },
		[VLM_DTYPE_F64] = { "F64", 8 },   [VLM_DTYPE_BOOL] = { "BOOL", 1 },
	};
	_Static_assert(sizeof table / sizeof table[0] == VLM_DTYPE_COUNT, "dtype table");
	return (unsigned)dtype < VLM_DTYPE_COUNT ? &table[dtype] : NULL;
}

/* Bytes per element, 0 for a value outside the enum. */
static inline size_t vlm_dtype_size(enum vlm_dtype dtype)
{
	const struct vlm_dtype_info *info = vlm_dtype_info(dtype);
	return info ? info->size : 0;
}

static inline const char *vlm_dtype_name(enum vlm_dtype dtype)
{
	const struct vlm_dtype_info *info = vlm_dtype_info(dtype);
	return info ? info->name : "unknown";
}

#define VLM_MAX_DIMS 8

struct vlm_tensor {
	const char *name; /* borrowed; canonical name after prefix normalisation */
	enum vlm_dtype dtype;
	int n_dims;
	int64_t shape[VLM_MAX_DIMS];
	const void *data; /* borrowed, little-endian, row-major */
	size_t n_bytes;
};

static inline int64_t vlm_tensor_numel(const struct vlm_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->n_dims; i++)
		n *= t->shape[i];
	return n;
}

static inline float vlm_bf16_to_f32(uint16_t h)
{
	union {
		uint32_t u;
		float f;
	} v = { .u = (uint32_t)h << 16 };
	return v.f;
}

/* Round-to-nearest-even, as torch does when casting f32 to bf16 (NaN kept quiet). */
static inline uint16_t vlm_f32_to_bf16(float f)
{
	union {
		float f;
		uint32_t u;
	} v = { .f = f };
	if ((v.u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((v.u >> 16) | 0x40u);
	return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

/* IEEE binary16 to f32, exact for every input (subnormals, infinities and NaN included). */
static inline float vlm_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
	union {
		uint32_t u;
		float f;
	} v;
	if (exp == 0x1f) {
		v.u = sign | 0x7f800000u | (man << 13);
	} else if (exp != 0) {
		v.u = sign | ((exp + 112u) << 23) | (man << 13);
	} else {
		/* zero or subnormal: man * 2^-24 is exact in f32 */
		v.f = (float)man * 0x1p-24f;
		v.u |= sign;
	}
	return v.f;
}

/* Element i of a float tensor (f32, f16 or bf16) as f32. */
static inline float vlm_float_load(enum vlm_dtype dtype, const void *data, int64_t i)
{
	switch (dtype) {
	case VLM_DTYPE_BF16:
		return vlm_bf16_to_f32(((const uint16_t *)data)[i]);
	case VLM_DTYPE_F16:
		return vlm_f16_to_f32(((const uint16_t *)data)[i]);
	default:
		return ((const float *)data)[i];
	}
}

#endif
