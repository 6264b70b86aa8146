// Messages are built with std::string / std::to_string only: iostreams inside an
// extension can crash when the process's global locale facets come from another
// libstdc++ (seen with torch 2.11 + CUDA 13 on the GPU machine).
//
// Checked views of DLPack capsules: every op validates dtype, rank, shape, strides
// (compact row-major only) and device before it touches memory, and raises a Python
// ValueError/TypeError naming the argument, the value found and the requirement.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dlpack_abi.h"

namespace idp {

namespace py = pybind11;

enum class Device { CPU, CUDA };

struct TensorArg {
  std::string name;
  void* data = nullptr;
  Device device = Device::CPU;
  int device_id = 0;
  std::vector<int64_t> shape;
  uint8_t dtype_code = 0;  // DLDataTypeCode
  uint8_t dtype_bits = 0;

  bool is(uint8_t code, uint8_t bits) const { return dtype_code == code && dtype_bits == bits; }

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
};

inline std::string shape_str(const int64_t* shape, int ndim) {
  std::string s = "(";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  if (ndim == 1) s += ",";
  return s + ")";
}

inline const char* dtype_name(DLDataType t) {
  if (t.lanes != 1) return "vector dtype";
  if (t.code == kDLFloat && t.bits == 32) return "float32";
  if (t.code == kDLFloat && t.bits == 64) return "float64";
  if (t.code == kDLFloat && t.bits == 16) return "float16";
  if (t.code == kDLInt && t.bits == 64) return "int64";
  if (t.code == kDLInt && t.bits == 32) return "int32";
  if (t.code == kDLUInt && t.bits == 32) return "uint32";
  if (t.code == kDLUInt && t.bits == 8) return "uint8";
  return "unsupported dtype";
}

// Allowed element types, by DLPack (code, bits).
struct DType {
  uint8_t code;
  uint8_t bits;
  const char* name;
};
constexpr DType kFloat32{kDLFloat, 32, "float32"};
constexpr DType kFloat64{kDLFloat, 64, "float64"};
constexpr DType kInt64{kDLInt, 64, "int64"};
constexpr DType kInt32{kDLInt, 32, "int32"};
constexpr DType kUInt32{kDLUInt, 32, "uint32"};
constexpr DType kUInt8{kDLUInt, 8, "uint8"};

// Borrow the capsule's DLTensor (the capsule keeps ownership; Python keeps the array
// alive for the duration of the call) and check it.
inline TensorArg tensor_arg(const py::object& obj, const char* name, std::vector<DType> dtypes,
                            int ndim) {
  if (!PyCapsule_CheckExact(obj.ptr()) || !PyCapsule_IsValid(obj.ptr(), "dltensor")) {
    throw py::type_error(std::string(name) +
                         ": expected an unconsumed DLPack capsule named 'dltensor' "
                         "(torch.utils.dlpack.to_dlpack(t)); got another object");
  }
  auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(obj.ptr(), "dltensor"));
  if (managed == nullptr) throw py::error_already_set();
  const DLTensor& t = managed->dl_tensor;
  TensorArg arg;
  arg.name = name;
  if (t.ndim != ndim) {
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                          "-D array, got " + std::to_string(t.ndim) + "-D with shape " +
                          shape_str(t.shape, t.ndim));
  }
  bool dtype_ok = false;
  for (const DType& d : dtypes) dtype_ok |= (t.dtype.code == d.code && t.dtype.bits == d.bits);
  if (!dtype_ok || t.dtype.lanes != 1) {
    std::string msg = std::string(name) + ": expected dtype ";
    for (size_t i = 0; i < dtypes.size(); ++i) msg += std::string(i ? " or " : "") + dtypes[i].name;
    throw py::type_error(msg + ", got " + dtype_name(t.dtype));
  }
  if (t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost) {
    arg.device = Device::CPU;
  } else if (t.device.device_type == kDLCUDA || t.device.device_type == kDLCUDAManaged) {
    arg.device = Device::CUDA;
  } else {
    throw py::value_error(std::string(name) + ": unsupported device type " +
                          std::to_string(t.device.device_type) + " (expected CPU or CUDA)");
  }
  arg.device_id = t.device.device_id;
  arg.dtype_code = t.dtype.code;
  arg.dtype_bits = t.dtype.bits;
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (t.shape[i] < 0) throw py::value_error(std::string(name) + ": negative dimension");
    // Strides of size-1 dimensions are irrelevant to the memory layout.
    if (t.strides != nullptr && t.shape[i] > 1 && t.strides[i] != expected) {
      throw py::value_error(std::string(name) + ": expected a contiguous (row-major) array "
                            "with shape " + shape_str(t.shape, t.ndim) +
                            "; call .contiguous() first");
    }
    expected *= t.shape[i];
  }
  arg.shape.assign(t.shape, t.shape + ndim);
  arg.data = static_cast<char*>(t.data) + t.byte_offset;
  if (arg.data == nullptr && arg.numel() > 0) {
    throw py::value_error(std::string(name) + ": null data pointer");
  }
  return arg;
}

inline void require_shape(const TensorArg& a, int dim, int64_t value, const char* what) {
  if (a.shape[dim] != value) {
    throw py::value_error(a.name + ": dimension " + std::to_string(dim) + " must equal " + what +
                          " (" + std::to_string(value) + "), got shape " +
                          shape_str(a.shape.data(), static_cast<int>(a.shape.size())));
  }
}

inline void require_same_device(const TensorArg& a, const TensorArg& b) {
  if (a.device != b.device || a.device_id != b.device_id) {
    throw py::value_error(a.name + " and " + b.name + " must be on the same device");
  }
}

}  // namespace idp
