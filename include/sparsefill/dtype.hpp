// Element types and the host conversions between them (bf16 and fp16 round to nearest even).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sparsefill {

enum class DType { kBF16, kFP16, kFP32, kFP64, kInt32, kBool };

std::size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);  // "bf16", "fp16", "fp32", "fp64", "int32", "bool"
DType parse_dtype(const std::string& name, const std::string& argument);  // throws Error(argument)
bool is_floating(DType dtype);

float bf16_to_float(std::uint16_t bits);
std::uint16_t float_to_bf16(float value);
float fp16_to_float(std::uint16_t bits);
std::uint16_t float_to_fp16(float value);

// Reads/writes element `index` (in elements from `base`) of a floating dtype as double.
double load_as_double(const void* base, DType dtype, std::int64_t index);
void store_from_double(void* base, DType dtype, std::int64_t index, double value);
// `value` as a floating dtype holds it (what store_from_double then load_as_double give).
double round_to_dtype(double value, DType dtype);

}  // namespace sparsefill
