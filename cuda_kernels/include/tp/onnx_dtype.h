// ONNX tensor element types: the one table of codes, sizes and names in C++ (the runtime, the shim and the
// bindings all read it). Header-only, no CUDA, no Python.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tp {
namespace onnx {

struct DtypeInfo {
  int32_t code;
  size_t size;        // bytes per element; 0 for strings
  const char* name;   // our spelling ("float32", ...), also numpy's except for bfloat16
};

inline constexpr DtypeInfo kDtypes[] = {
    {1, 4, "float32"},  {2, 1, "uint8"},    {3, 1, "int8"},     {4, 2, "uint16"},  {5, 2, "int16"},
    {6, 4, "int32"},    {7, 8, "int64"},    {8, 0, "string"},   {9, 1, "bool"},    {10, 2, "float16"},
    {11, 8, "float64"}, {12, 4, "uint32"},  {13, 8, "uint64"},  {16, 2, "bfloat16"},  {17, 1, "float8e4m3fn"},
};

// The entry of `code`, or nullptr for an element type not in the table.
inline const DtypeInfo* dtype_info(int32_t code) {
  for (const auto& d : kDtypes)
    if (d.code == code) return &d;
  return nullptr;
}

}  // namespace onnx
}  // namespace tp
