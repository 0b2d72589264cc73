#include "sparsefill/dtype.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "sparsefill/error.hpp"

namespace sparsefill {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
    case DType::kFP16:
      return 2;
    case DType::kFP32:
    case DType::kInt32:
      return 4;
    case DType::kFP64:
      return 8;
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bf16";
    case DType::kFP16:
      return "fp16";
    case DType::kFP32:
      return "fp32";
    case DType::kFP64:
      return "fp64";
    case DType::kInt32:
      return "int32";
    case DType::kBool:
      return "bool";
  }
  return "?";
}

DType parse_dtype(const std::string& name, const std::string& argument) {
  for (DType d : {DType::kBF16, DType::kFP16, DType::kFP32, DType::kFP64, DType::kInt32, DType::kBool}) {
    if (dtype_name(d) == name) return d;
  }
  throw Error(argument, "unknown dtype '" + name + "' (expected bf16, fp16, fp32, fp64, int32 or bool)");
}

bool is_floating(DType dtype) {
  return dtype == DType::kBF16 || dtype == DType::kFP16 || dtype == DType::kFP32 || dtype == DType::kFP64;
}

float bf16_to_float(std::uint16_t bits) {
  std::uint32_t word = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, 4);
  return value;
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t word;
  std::memcpy(&word, &value, 4);
  if (std::isnan(value)) return static_cast<std::uint16_t>((word >> 16) | 0x40);  // keep NaN quiet
  std::uint32_t rounding = 0x7FFF + ((word >> 16) & 1);
  return static_cast<std::uint16_t>((word + rounding) >> 16);
}

float fp16_to_float(std::uint16_t bits) {
  std::uint32_t sign = (bits >> 15) & 1;
  std::uint32_t exponent = (bits >> 10) & 0x1F;
  std::uint32_t mantissa = bits & 0x3FF;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

std::uint16_t float_to_fp16(float value) {
  std::uint32_t word;
  std::memcpy(&word, &value, 4);
  std::uint16_t sign = static_cast<std::uint16_t>((word >> 16) & 0x8000);
  if (std::isnan(value)) return static_cast<std::uint16_t>(sign | 0x7E00);
  float magnitude = std::fabs(value);
  if (magnitude >= 65520.0f) return static_cast<std::uint16_t>(sign | 0x7C00);  // rounds to infinity
  if (magnitude < std::ldexp(1.0f, -14)) {
    // Subnormal: units of 2^-24, round half to even.
    float units = magnitude * std::ldexp(1.0f, 24);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(units)));
  }
  int exponent;
  float fraction =
      std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent, fraction in [0.5, 1)
  float scaled = std::nearbyint(fraction * 2048.0f);  // 11 significant bits, round half to even
  if (scaled >= 2048.0f) {
    scaled /= 2.0f;
    ++exponent;
  }
  std::uint32_t biased = static_cast<std::uint32_t>(exponent - 1 + 15);
  if (biased >= 31) return static_cast<std::uint16_t>(sign | 0x7C00);
  return static_cast<std::uint16_t>(sign | (biased << 10) | (static_cast<std::uint32_t>(scaled) & 0x3FF));
}

double load_as_double(const void* base, DType dtype, std::int64_t index) {
  switch (dtype) {
    case DType::kBF16:
      return bf16_to_float(static_cast<const std::uint16_t*>(base)[index]);
    case DType::kFP16:
      return fp16_to_float(static_cast<const std::uint16_t*>(base)[index]);
    case DType::kFP32:
      return static_cast<const float*>(base)[index];
    case DType::kFP64:
      return static_cast<const double*>(base)[index];
    case DType::kInt32:
      return static_cast<const std::int32_t*>(base)[index];
    case DType::kBool:
      return static_cast<const std::uint8_t*>(base)[index] ? 1.0 : 0.0;
  }
  return 0.0;
}

void store_from_double(void* base, DType dtype, std::int64_t index, double value) {
  switch (dtype) {
    case DType::kBF16:
      static_cast<std::uint16_t*>(base)[index] = float_to_bf16(static_cast<float>(value));
      return;
    case DType::kFP16:
      static_cast<std::uint16_t*>(base)[index] = float_to_fp16(static_cast<float>(value));
      return;
    case DType::kFP32:
      static_cast<float*>(base)[index] = static_cast<float>(value);
      return;
    case DType::kFP64:
      static_cast<double*>(base)[index] = value;
      return;
    case DType::kInt32:
      static_cast<std::int32_t*>(base)[index] = static_cast<std::int32_t>(value);
      return;
    case DType::kBool:
      static_cast<std::uint8_t*>(base)[index] = value != 0.0;
      return;
  }
}

double round_to_dtype(double value, DType dtype) {
  require(is_floating(dtype), "dtype", "round_to_dtype takes a floating dtype, got " + dtype_name(dtype));
  unsigned char element[sizeof(double)];
  store_from_double(element, dtype, 0, value);
  return load_as_double(element, dtype, 0);
}

}  // namespace sparsefill
